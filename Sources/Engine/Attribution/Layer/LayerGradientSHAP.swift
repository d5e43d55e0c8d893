import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Layer GradientSHAP, as Captum's `LayerGradientShap`: for `samples` draws per input — a
/// baseline x′ from the distribution, a point α ∈ [0, 1), Gaussian noise of `stdev` on the
/// input x̃ — the layer's difference `a(x̃) − a(x′)` times the target's gradient at the layer
/// for the input `x′ + α(x̃ − x′)`, averaged over the draws.
///
/// Shape: the layer's `[N, …]`. The convergence delta is each input's mean over its draws of
/// Σ attributions − (F(x̃) − F(x′)). The random numbers follow `GradientSHAP`'s layout (all
/// input noise, then every draw's baseline, then every draw's α), so a seed gives the same
/// draws as GradientSHAP's; `draws` replaces them (e.g. with Captum's recorded ones).
public struct LayerGradientSHAP: AttributionMethod {
    /// One draw: which baseline, and where on the segment from it to the (noisy) input.
    public struct Draw: Sendable, Equatable {
        /// Row of the baseline distribution.
        public var baseline: Int
        /// The point's position α ∈ [0, 1] on the segment.
        public var alpha: Float

        /// A draw of baseline row `baseline` at `alpha`.
        public init(baseline: Int, alpha: Float) {
            self.baseline = baseline
            self.alpha = alpha
        }
    }

    public var isStochastic: Bool { true }
    /// The layer attributed to.
    public var layer: LayerChoice
    /// Draws per input (Captum's `n_samples`, default 5).
    public var samples: Int
    /// Standard deviation of the Gaussian noise added to each draw's input (Captum's `stdevs`, default 0).
    public var stdev: Float
    /// What baselines are drawn from.
    public var baselines: GradientSHAP.Baselines
    /// Draws per forward/backward pass.
    public var batchSize: Int
    /// The seed of the draws (and noise).
    public var seed: UInt64
    /// Explicit draws, input-major (input 0's `samples` draws, then input 1's …), replacing the
    /// seeded baselines and α (the noise still comes from the seed).
    public var draws: [Draw]?
    public var progress: AttributionProgress?

    /// Layer GradientSHAP of `layer` with Captum's defaults (5 samples, no noise).
    public init(layer: LayerChoice, samples: Int = 5, stdev: Float = 0, baselines: GradientSHAP.Baselines,
                batchSize: Int = 16, seed: UInt64 = SeededRandom.randomSeed(), draws: [Draw]? = nil,
                progress: AttributionProgress? = nil) {
        self.layer = layer
        self.samples = samples
        self.stdev = stdev
        self.baselines = baselines
        self.batchSize = batchSize
        self.seed = seed
        self.draws = draws
        self.progress = progress
    }

    /// Passes: ⌈N · samples / batchSize⌉ on the draws' points, plus the layer forwards of the
    /// baselines and the (noisy) inputs.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: saturatingProduct(samples, inputShape[0]), batchSize: batchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 1 else { throw ElucidateError(.invalidArgument, "layer GradientSHAP needs at least 1 sample") }
        guard stdev >= 0, stdev.isFinite else { throw ElucidateError(.invalidArgument, "the noise standard deviation must be ≥ 0") }
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "layer-gradient-shap"), layer: layer,
                                               batchSize: batchSize)
        var random = SeededRandom(seed: seed)
        let rowShape = Array(inputs.shape.dropFirst())
        let distribution: Tensor
        switch baselines {
        case .tensor(let tensor):
            guard tensor.rank == 4, tensor.shape[0] >= 1, Array(tensor.shape.dropFirst()) == rowShape else {
                throw ElucidateError(.invalidArgument, "baselines must have shape (B, \(rowShape.map(String.init).joined(separator: ", "))), got \(tensor.shape)")
            }
            try tensor.requireFinite("the baselines", advice: "baselines must hold finite numbers only")
            distribution = tensor
        case .zeroAndNoise(let count):
            distribution = Tensor.concatenatingRows([Tensor(zeros: [1] + rowShape),
                                                     random.addingNoise(to: Tensor(zeros: [max(0, count)] + rowShape), stdev: 1)])
        }
        let rows = inputs.shape[0], rowSize = inputs.count / rows, count = rows * samples
        let expanded = inputs.repeatingRows(samples)  // a, a, b, b: draw d explains input d / samples
        // As GradientSHAP: the noise first (draw-major), then the baselines, then the alphas.
        var chosenRandom = random
        if stdev != 0 { for _ in 0..<count { chosenRandom.skipGaussians(rowSize) } }
        let noisy = random.addingNoise(to: expanded, stdev: stdev)
        let chosen: [Draw]
        if let draws {
            guard draws.count == count, draws.allSatisfy({ $0.baseline >= 0 && $0.baseline < distribution.shape[0] }) else {
                throw ElucidateError(.invalidArgument, "\(draws.count) draws given for \(count) (or a baseline out of range)")
            }
            chosen = draws
        } else {
            let indices = (0..<count).map { _ in Int(chosenRandom.next() % UInt64(distribution.shape[0])) }
            chosen = indices.map { Draw(baseline: $0, alpha: Float(chosenRandom.nextUniform())) }
        }
        let drawnBaselines = Tensor.concatenatingRows(chosen.map { distribution.rows($0.baseline..<$0.baseline + 1) })
        var points = [Float](repeating: 0, count: count * rowSize)
        noisy.withUnsafeBufferPointer { x in
            drawnBaselines.withUnsafeBufferPointer { b in
                for draw in 0..<count {
                    let alpha = chosen[draw].alpha
                    for i in 0..<rowSize { points[draw * rowSize + i] = b[draw * rowSize + i] + alpha * (x[draw * rowSize + i] - b[draw * rowSize + i]) }
                }
            }
        }
        let drawTargets = (0..<count).map { targets[$0 / samples] }
        let total = progressTotal(inputShape: inputs.shape)
        let gradients = try evaluator.evaluate(Tensor(shape: noisy.shape, values: points), targets: drawTargets,
                                               passed: { progress?($0, total) }).gradients
        let noisyLayer = try evaluator.evaluate(noisy, targets: drawTargets, gradients: false).values
        let baseLayer = try evaluator.evaluate(drawnBaselines, targets: drawTargets, gradients: false).values
        let perDraw = noisyLayer.zipMap(baseLayer) { $0 - $1 }.multiplying(gradients)
        let drawDeltas = try convergenceDelta(perDraw, model: model, inputs: noisy, baselines: drawnBaselines,
                                              targets: drawTargets, batchSize: batchSize)
        let layerRow = perDraw.count / count
        var mean = [Float](repeating: 0, count: rows * layerRow)
        var deltas = [Float](repeating: 0, count: rows)
        perDraw.withUnsafeBufferPointer { values in
            for draw in 0..<count {
                let row = draw / samples
                for i in 0..<layerRow { mean[row * layerRow + i] += values[draw * layerRow + i] / Float(samples) }
                deltas[row] += drawDeltas[draw] / Float(samples)
            }
        }
        return Attribution(values: Tensor(shape: [rows] + perDraw.shape.dropFirst(), values: mean), convergenceDelta: deltas)
    }
}
