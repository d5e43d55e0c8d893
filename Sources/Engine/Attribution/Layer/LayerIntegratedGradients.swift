import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Layer Integrated Gradients, as Captum's `LayerIntegratedGradients`: Integrated Gradients
/// in a layer's space. With `a(x)` the layer's output (or input), the forward runs on the
/// input `x` with the layer replaced by `a(x′) + α(a(x) − a(x′))`, and
/// `(a(x) − a(x′)) · ∫₀¹ ∂F/∂a dα`, by the same quadrature as `IntegratedGradients`.
///
/// Shape: the layer's `[N, …]` (e.g. `[N, 256, 14, 14]` for `layer3` of a ResNet at 224×224).
/// The convergence delta is Captum's: Σ attributions − (F(x) − F(x′)).
public struct LayerIntegratedGradients: BaselineAttributionMethod {
    /// The layer attributed to.
    public var layer: LayerChoice
    /// Points on the path (Captum's `n_steps`); at least `quadrature.minimumSteps`.
    public var steps: Int
    /// Where on the path the points lie and how they are weighted (Captum's `method`).
    public var quadrature: Quadrature
    /// The input-space baseline x′ whose layer values start the path; zero by default.
    public var baseline: Baseline
    /// Path points per forward/backward pass (Captum's `internal_batch_size`).
    public var internalBatchSize: Int
    public var progress: AttributionProgress?

    /// Layer Integrated Gradients with Captum's defaults: 50 Gauss–Legendre steps from a zero baseline.
    public init(layer: LayerChoice, steps: Int = 50, quadrature: Quadrature = .gaussLegendre,
                baseline: Baseline = .zero, internalBatchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.steps = steps
        self.quadrature = quadrature
        self.baseline = baseline
        self.internalBatchSize = internalBatchSize
        self.progress = progress
    }

    /// Passes: the two layer forwards (input and baseline, ⌈N / internalBatchSize⌉ each) and
    /// ⌈steps · N / internalBatchSize⌉ forward/backward passes on the path.
    public func progressTotal(inputShape: [Int]) -> Int {
        2 * passCount(rows: inputShape[0], batchSize: internalBatchSize)
            + passCount(rows: steps * inputShape[0], batchSize: internalBatchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        try quadrature.requireSteps(steps)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "layer-integrated-gradients"),
                                               layer: layer, batchSize: internalBatchSize)
        let total = progressTotal(inputShape: inputs.shape)
        let forwardPasses = passCount(rows: inputs.shape[0], batchSize: internalBatchSize)
        let baselines = try baseline.expanded(like: inputs)
        let end = try evaluator.evaluate(inputs, targets: targets, gradients: false,
                                         passed: { progress?($0, total) }).values
        let start = try evaluator.evaluate(baselines, targets: targets, gradients: false,
                                           passed: { progress?(forwardPasses + $0, total) }).values
        let (alphas, weights) = quadrature.nodes(steps: steps)
        // The path runs in the layer's space, from the baseline's layer values to the input's.
        let path = PathPoints(inputs: end, baselines: start, alphas: alphas)

        // Path points in Captum's order (step-major), a chunk per pass; every point runs the
        // input itself with the layer replaced by its point on the path.
        var totals = [Float](repeating: 0, count: end.count)
        try PassMemory.require(rows: min(path.count, max(1, internalBatchSize)), rowShape: Array(inputs.shape.dropFirst()),
                               model: model, option: "the internal batch size (--internal-batch-size)")
        var first = 0, passed = 2 * forwardPasses
        while first < path.count {
            let last = min(path.count, first + max(1, internalBatchSize))
            let rowsOfPoints = (first..<last).map { path.row(of: $0) }
            let chunkEvaluator = LayerGradientEvaluator(model: evaluator.model, layer: layer, batchSize: last - first)
            let gradients = try chunkEvaluator.evaluate(inputs.gatheringRows(rowsOfPoints),
                                                        targets: rowsOfPoints.map { targets[$0] },
                                                        replacements: path.batch(first..<last)).gradients
            PathPoints.accumulate(gradients, range: first..<last, rows: path.rows, into: &totals) {
                Float(weights[path.step(of: $0)])
            }
            passed += 1
            progress?(passed, total)
            first = last
        }
        let attributions = Tensor(shape: end.shape, values: totals).multiplying(path.difference)
        let delta = try convergenceDelta(attributions, model: model, inputs: inputs, baselines: baselines,
                                         targets: targets, batchSize: internalBatchSize)
        return Attribution(values: attributions, convergenceDelta: delta)
    }
}
