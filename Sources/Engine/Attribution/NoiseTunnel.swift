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
    /// Hears the whole run: the method's progress over every batch of noisy copies, one total.
    /// When set, it replaces the method's own `progress`; when nil, the method's own hears
    /// each batch of noisy copies as a separate run.
    public var progress: AttributionProgress?

    public init(_ method: Method, kind: Kind = .smoothgrad, samples: Int = 5, stdev: Float = 1.0,
                sampleBatchSize: Int? = nil, seed: UInt64 = SeededRandom.randomSeed(),
                progress: AttributionProgress? = nil) {
        self.method = method
        self.kind = kind
        self.samples = samples
        self.stdev = stdev
        self.sampleBatchSize = sampleBatchSize
        self.seed = seed
        self.progress = progress
    }

    /// The sizes of the batches of noisy copies per input handed to the method, in order.
    private var partitions: [Int] {
        var result: [Int] = []
        var done = 0
        while done < samples {
            let partition = min(samples - done, max(1, sampleBatchSize ?? samples))
            result.append(partition)
            done += partition
        }
        return result
    }

    /// The method's own total summed over its calls, one per batch of noisy copies (each on
    /// N · copies rows).
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        var total = 0
        for partition in partitions {
            total += try method.repeatingPerInputSettings(partition)
                .progressTotal(inputShape: [inputShape[0] * partition] + inputShape.dropFirst())
        }
        return total
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
        let total = progress == nil ? 0 : try progressTotal(inputShape: inputs.shape)
        var reported = 0
        for partition in partitions {
            let noisy = random.addingNoise(to: inputs.repeatingRows(partition), stdev: stdev)
            let expandedTargets = targets.flatMap { Array(repeating: $0, count: partition) }
            var repeated = method.repeatingPerInputSettings(partition)
            if let progress {
                let offset = reported
                repeated.progress = { done, _ in progress(offset + done, total) }
                reported += try repeated.progressTotal(inputShape: noisy.shape)
            }
            let result = try repeated.attribute(model, inputs: noisy, targets: expandedTargets)
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
