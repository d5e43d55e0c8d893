import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

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
/// noisy copies of each input and aggregates the attributions. The result has the method's
/// shape: the input's `[N, C, H, W]` for pixel methods, the layer's `[N, …]` for layer methods
/// (the noise is always added to the input).
public struct NoiseTunnel<Method: AttributionMethod>: AttributionMethod {
    /// Draws its noise from `seed`.
    public var isStochastic: Bool { true }

    /// How the noisy copies' attributions are combined.
    public typealias Kind = NoiseTunnelKind

    /// The method run on each noisy copy.
    public var method: Method
    /// SmoothGrad, SmoothGrad², or VarGrad.
    public var kind: Kind
    /// Noisy copies per input (Captum's `nt_samples`).
    public var samples: Int
    /// Standard deviation of the Gaussian noise, in input units (Captum's `stdevs`).
    public var stdev: Float
    /// Noisy copies of each input handed to the method at once (Captum's `nt_samples_batch_size`);
    /// nil: all of them up to `automaticBatchElements` floats of copies, then batches of that size.
    public var sampleBatchSize: Int?
    /// Seeds the noise: one seed, one result, bit for bit.
    public var seed: UInt64
    /// Hears the whole run: the method's progress over every batch of noisy copies, one total.
    /// When set, it replaces the method's own `progress`; when nil, the method's own hears
    /// each batch of noisy copies as a separate run.
    public var progress: AttributionProgress?

    /// `method` inside a noise tunnel, with Captum's defaults (SmoothGrad, 5 samples, σ = 1);
    /// a random `seed` unless given.
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

    /// Floats of noisy copies held at once when `sampleBatchSize` is nil (2²⁴: 64 MiB).
    ///
    /// The copies are the method's input, so its own memory grows with them; beyond this the
    /// tunnel streams them in batches and keeps only running sums, so its memory does not grow
    /// with `samples`. The rule is fixed (not the machine's memory), so a seed gives the same
    /// numbers everywhere.
    public static var automaticBatchElements: Int { 1 << 24 }

    /// Noisy copies of each input handed to the method at once for inputs of shape
    /// `inputShape` `[N, C, H, W]`: `sampleBatchSize`, or when it is nil every sample as long as
    /// the N · samples copies fit in `automaticBatchElements` floats (as before streaming: the
    /// same numbers for the same seed), else as many as fit, at least 1.
    public func copiesPerBatch(inputShape: [Int]) -> Int {
        let wanted = max(1, samples)
        if let sampleBatchSize { return min(wanted, max(1, sampleBatchSize)) }
        let perCopy = max(1, inputShape.reduce(1) { saturatingProduct($0, $1) })
        return max(1, min(wanted, Self.automaticBatchElements / perCopy))
    }

    /// The method's own total summed over its calls, one per batch of noisy copies (each on
    /// N · copies rows).
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        let perBatch = copiesPerBatch(inputShape: inputShape)
        let (full, last) = (max(1, samples) / perBatch, max(1, samples) % perBatch)
        func total(_ copies: Int) throws(ElucidateError) -> Int {
            guard let rows = checkedProduct(inputShape[0], copies) else { return .max }
            return try method.repeatingPerInputSettings(copies).progressTotal(inputShape: [rows] + inputShape.dropFirst())
        }
        var result = full == 0 ? 0 : saturatingProduct(full, try total(perBatch))
        if last > 0 { result = saturatingSum(result, try total(last)) }
        return result
    }

    /// Refuses a batch of noisy copies whose floats alone would not fit the memory budget
    /// (only an explicit `sampleBatchSize` can ask for one), before anything is allocated.
    func checkBatchMemory(inputShape: [Int], copies: Int) throws(ElucidateError) {
        let budget = try MemoryBudget.current()
        var bytes = checkedProduct(copies, 4)
        for size in inputShape { bytes = bytes.flatMap { checkedProduct($0, size) } }
        guard let bytes, bytes <= budget.bytes else {
            let perCopy = max(1, inputShape.reduce(4) { saturatingProduct($0, $1) })
            throw ElucidateError(.invalidArgument,
                "a noise tunnel batch of \(copies) noisy copies of \(inputShape[0]) input(s) would need "
                + (bytes.map { MemoryBudget.format($0) } ?? "more memory than can be counted")
                + ", more than the memory budget of \(MemoryBudget.format(budget.bytes)) (\(budget.origin)); "
                + "at most \(budget.bytes / perCopy) copies fit: use a smaller sample batch size (--nt-batch-size)")
        }
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 1 else { throw ElucidateError(.invalidArgument, "the noise tunnel needs at least 1 sample") }
        guard stdev >= 0, stdev.isFinite else { throw ElucidateError(.invalidArgument, "the noise standard deviation must be ≥ 0") }
        var random = SeededRandom(seed: seed)
        let rows = inputs.shape[0]
        // The method's rows may have the input's shape or, for a layer method, the layer's:
        // the sums take the shape of the first batch's result.
        var rowShape: [Int]? = nil
        var sum: [Double] = [], sumOfSquares: [Double] = []
        var deltas: [Double]? = nil
        var details: [String: String] = [:]
        let total = progress == nil ? 0 : try progressTotal(inputShape: inputs.shape)
        var reported = 0
        let perBatch = copiesPerBatch(inputShape: inputs.shape)
        try checkBatchMemory(inputShape: inputs.shape, copies: perBatch)
        var started = 0
        // Batches of noisy copies in order, each freed before the next: only the running sums
        // below outlive a batch, so memory does not grow with `samples`.
        while started < samples {
            let partition = min(samples - started, perBatch)
            started += partition
            let noisy = random.addingNoise(to: inputs.repeatingRows(partition), stdev: stdev)
            let expandedTargets = targets.flatMap { Array(repeating: $0, count: partition) }
            var repeated = method.repeatingPerInputSettings(partition)
            if let progress {
                let offset = reported
                repeated.progress = { done, _ in progress(saturatingSum(offset, done), total) }
                reported = saturatingSum(reported, try repeated.progressTotal(inputShape: noisy.shape))
            }
            let result = try repeated.attribute(model, inputs: noisy, targets: expandedTargets)
            details.merge(result.details) { $1 }
            let resultRowShape = Array(result.values.shape.dropFirst())
            guard result.values.shape.first == rows * partition, rowShape == nil || rowShape == resultRowShape else {
                throw ElucidateError(.internalFailure, "the noise tunnel's method returned \(result.values.shape) for \(rows * partition) rows")
            }
            if rowShape == nil {
                rowShape = resultRowShape
                sum = [Double](repeating: 0, count: rows * resultRowShape.reduce(1, *))
                sumOfSquares = sum
            }
            let rowSize = resultRowShape.reduce(1, *)
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
        return Attribution(values: Tensor(shape: [rows] + (rowShape ?? Array(inputs.shape.dropFirst())), values: aggregated),
                           convergenceDelta: deltas.map { $0.map { Float($0 / n) } }, details: details)
    }
}
