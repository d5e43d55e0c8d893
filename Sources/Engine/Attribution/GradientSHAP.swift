import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// GradientSHAP, as Captum's `GradientShap`: for each of `samples` draws, a baseline chosen
/// at random from a distribution, a random point on the segment from it to the (noisy)
/// input, and (input − baseline) × gradient there; the mean over the draws.
public struct GradientSHAP: AttributionMethod {
    /// Draws its samples from `seed`.
    public var isStochastic: Bool { true }

    /// Where baselines are drawn from.
    public enum Baselines: Sendable {
        /// Rows of a tensor `[B, C, H, W]`.
        case tensor(Tensor)
        /// A zero image plus `noiseImages` images of standard Gaussian noise (drawn from the seed).
        case zeroAndNoise(noiseImages: Int)
    }

    /// Draws per input (Captum's `n_samples`).
    public var samples: Int
    /// Standard deviation of Gaussian noise added to the inputs (Captum's `stdevs`).
    public var stdev: Float
    /// The distribution baselines are drawn from.
    public var baselines: Baselines
    /// Draws (path points) per forward/backward pass.
    public var batchSize: Int
    /// Seeds the noise, the baselines chosen and the path points: one seed, one result, bit for bit.
    public var seed: UInt64
    public var progress: AttributionProgress?

    /// GradientSHAP with Captum's defaults (5 samples, no input noise) over a zero and four
    /// Gaussian-noise baselines; a random `seed` unless given.
    public init(samples: Int = 5, stdev: Float = 0, baselines: Baselines = .zeroAndNoise(noiseImages: 4),
                batchSize: Int = 16, seed: UInt64 = SeededRandom.randomSeed(), progress: AttributionProgress? = nil) {
        self.samples = samples
        self.stdev = stdev
        self.baselines = baselines
        self.batchSize = batchSize
        self.seed = seed
        self.progress = progress
    }

    /// Forward/backward passes: ⌈samples · N / batchSize⌉ (every draw, a chunk per pass).
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: saturatingProduct(samples, inputShape[0]), batchSize: batchSize)
    }

    /// Floats per buffer of a batch of draws (2²³: 32 MiB; a batch holds five such buffers:
    /// noisy inputs, baselines, path points, gradients, attributions). Tests lower it.
    var batchElements = 1 << 23

    /// Draws evaluated together for inputs of `rowSize` elements: a multiple of `batchSize`
    /// (so the forward/backward chunks are the ones of one big batch, and the numbers the same
    /// bit for bit) holding about `batchElements` floats per buffer, at least one chunk.
    /// Memory is bounded by it, not by `samples`.
    func drawsPerBatch(rowSize: Int) -> Int {
        let chunk = max(1, batchSize)
        return chunk * max(1, batchElements / max(1, rowSize) / chunk)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 1 else { throw ElucidateError(.invalidArgument, "GradientSHAP needs at least 1 sample") }
        guard stdev >= 0, stdev.isFinite else { throw ElucidateError(.invalidArgument, "the noise standard deviation must be ≥ 0") }
        var random = SeededRandom(seed: seed)
        let rowShape = Array(inputs.shape.dropFirst())
        try PassMemory.require(rows: min(saturatingProduct(samples, inputs.shape[0]), max(1, batchSize)), rowShape: rowShape,
                               model: model, option: "the internal batch size (--internal-batch-size)")
        let distribution: Tensor
        let description: String
        switch baselines {
        case .tensor(let tensor):
            guard tensor.rank == 4, tensor.shape[0] >= 1, Array(tensor.shape.dropFirst()) == rowShape else {
                throw ElucidateError(.invalidArgument, "baselines must have shape (B, \(rowShape.map(String.init).joined(separator: ", "))), got \(tensor.shape)")
            }
            try tensor.requireFinite("the baselines", advice: "baselines must hold finite numbers only")
            distribution = tensor
            description = "\(tensor.shape[0]) given"
        case .zeroAndNoise(let count):
            let noise = random.addingNoise(to: Tensor(zeros: [max(0, count)] + rowShape), stdev: 1)
            distribution = Tensor.concatenatingRows([Tensor(zeros: [1] + rowShape), noise])
            description = "a zero image and \(count) images of standard Gaussian noise"
        }

        let rows = inputs.shape[0], rowSize = inputs.count / rows
        guard let draws = checkedProduct(rows, samples) else {
            throw ElucidateError(.invalidArgument, "\(rows) inputs × \(samples) samples are more draws than can be counted")
        }
        // The draws stream in batches, and the random numbers are those of drawing everything
        // at once: all the input noise (draw-major), then every draw's baseline, then every
        // draw's point on the segment. Three cursors start where each block starts.
        var noiseRandom = random
        var chosenRandom = random
        if stdev != 0 {
            for _ in 0..<draws { chosenRandom.skipGaussians(rowSize) }
        }
        var alphaRandom = chosenRandom
        for _ in 0..<draws { _ = alphaRandom.next() }

        let perBatch = drawsPerBatch(rowSize: rowSize)
        let evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        let passes = passCount(rows: draws, batchSize: batchSize)
        let baselineCount = UInt64(distribution.shape[0])
        var mean = [Float](repeating: 0, count: inputs.count)
        var deltas = [Float](repeating: 0, count: rows)
        var first = 0
        while first < draws {
            let end = first + min(draws - first, perBatch)
            let count = end - first
            // Draw d explains input d / samples (inputs repeated: a, a, b, b).
            var noisy = Tensor(uninitialized: [count] + rowShape)
            inputs.withUnsafeBufferPointer { source in
                noisy.withUnsafeMutableBufferPointer { out in
                    for draw in first..<end {
                        (out.baseAddress! + (draw - first) * rowSize).update(from: source.baseAddress! + draw / samples * rowSize,
                                                                             count: rowSize)
                    }
                }
            }
            noisy = noiseRandom.addingNoise(to: noisy, stdev: stdev)
            let chosen = (0..<count).map { _ in Int(chosenRandom.next() % baselineCount) }
            let alphas = (0..<count).map { _ in Float(alphaRandom.nextUniform()) }
            var drawnBaselines = Tensor(uninitialized: noisy.shape)
            var scaled = Tensor(uninitialized: noisy.shape)
            distribution.withUnsafeBufferPointer { distributionValues in
                noisy.withUnsafeBufferPointer { noisyValues in
                    drawnBaselines.withUnsafeMutableBufferPointer { b in
                        scaled.withUnsafeMutableBufferPointer { s in
                            for draw in 0..<count {
                                let source = distributionValues.baseAddress! + chosen[draw] * rowSize
                                let input = noisyValues.baseAddress! + draw * rowSize
                                for i in 0..<rowSize {
                                    b[draw * rowSize + i] = source[i]
                                    s[draw * rowSize + i] = source[i] + alphas[draw] * (input[i] - source[i])
                                }
                            }
                        }
                    }
                }
            }
            let batchTargets = (first..<end).map { targets[$0 / samples] }
            let passesBefore = first / max(1, batchSize)  // `first` is a multiple of the chunk
            let gradients = try evaluator.gradients(scaled, targets: batchTargets,
                                                    passed: { progress?(passesBefore + $0, passes) }).gradients
            let perDraw = noisy.zipMap(drawnBaselines) { $0 - $1 }.multiplying(gradients)
            let drawDeltas = try convergenceDelta(perDraw, model: model, inputs: noisy, baselines: drawnBaselines,
                                                  targets: batchTargets, batchSize: batchSize)
            perDraw.withUnsafeBufferPointer { values in
                for draw in first..<end {
                    let row = draw / samples
                    for i in 0..<rowSize { mean[row * rowSize + i] += values[(draw - first) * rowSize + i] / Float(samples) }
                    deltas[row] += drawDeltas[draw - first] / Float(samples)
                }
            }
            first = end
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: mean), convergenceDelta: deltas,
                           details: ["baselines": description])
    }
}
