/// How a noise tunnel aggregates the attributions of the noisy copies.
public enum NoiseTunnelKind: String, Sendable, CaseIterable {
    /// Mean of the attributions.
    case smoothgrad
    /// Mean of their squares.
    case smoothgradSquared = "smoothgrad-sq"
    /// Their variance: mean of squares − square of the mean.
    case vargrad
}

/// NoiseTunnel (SmoothGrad and relatives), as Captum's `NoiseTunnel`: runs a method on
/// noisy copies of each input and aggregates the attributions.
public struct NoiseTunnel<Method: AttributionMethod>: AttributionMethod {
    public typealias Kind = NoiseTunnelKind

    public var method: Method
    public var kind: Kind
    public var samples: Int
    /// Standard deviation of the Gaussian noise, in input units (Captum's `stdevs`).
    public var stdev: Float
    /// Noisy copies of each input handed to the method at once (Captum's `nt_samples_batch_size`).
    public var sampleBatchSize: Int?
    public var seed: UInt64

    public init(_ method: Method, kind: Kind = .smoothgrad, samples: Int = 5, stdev: Float = 1.0,
                sampleBatchSize: Int? = nil, seed: UInt64 = SeededRandom.randomSeed()) {
        self.method = method
        self.kind = kind
        self.samples = samples
        self.stdev = stdev
        self.sampleBatchSize = sampleBatchSize
        self.seed = seed
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 1 else { throw ElucidateError(.invalidArgument, "the noise tunnel needs at least 1 sample") }
        guard stdev >= 0, stdev.isFinite else { throw ElucidateError(.invalidArgument, "the noise standard deviation must be ≥ 0") }
        var random = SeededRandom(seed: seed)
        let rows = inputs.shape[0], rowSize = inputs.count / rows
        var sum = [Double](repeating: 0, count: inputs.count)
        var sumOfSquares = [Double](repeating: 0, count: inputs.count)
        var deltas: [Double]? = nil
        var details: [String: String] = [:]
        var done = 0
        while done < samples {
            let partition = min(samples - done, max(1, sampleBatchSize ?? samples))
            let noisy = random.addingNoise(to: inputs.repeatingRows(partition), stdev: stdev)
            let expandedTargets = targets.flatMap { Array(repeating: $0, count: partition) }
            let result = try method.repeatingPerInputSettings(partition).attribute(model, inputs: noisy, targets: expandedTargets)
            details.merge(result.details) { $1 }
            result.values.withUnsafeBufferPointer { values in
                for row in 0..<rows {
                    for copy in 0..<partition {
                        let source = (row * partition + copy) * rowSize
                        for i in 0..<rowSize {
                            let v = Double(values[source + i])
                            sum[row * rowSize + i] += v
                            sumOfSquares[row * rowSize + i] += v * v
                        }
                    }
                }
            }
            if let resultDeltas = result.convergenceDelta {
                var accumulated = deltas ?? [Double](repeating: 0, count: rows)
                for (index, delta) in resultDeltas.enumerated() { accumulated[index / partition] += Double(delta) }
                deltas = accumulated
            }
            done += partition
        }
        let n = Double(samples)
        let aggregated: [Float]
        switch kind {
        case .smoothgrad: aggregated = sum.map { Float($0 / n) }
        case .smoothgradSquared: aggregated = sumOfSquares.map { Float($0 / n) }
        case .vargrad: aggregated = zip(sumOfSquares, sum).map { Float($0 / n - ($1 / n) * ($1 / n)) }
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: aggregated),
                           convergenceDelta: deltas.map { $0.map { Float($0 / n) } }, details: details)
    }
}
