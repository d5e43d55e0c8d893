import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Integrated Gradients (Sundararajan et al.), as Captum's `IntegratedGradients`:
/// (x − x′) · ∫₀¹ ∂F(x′ + α(x − x′))/∂x dα, by quadrature.
public struct IntegratedGradients: BaselineAttributionMethod {
    /// Points on the path from the baseline to the input (Captum's `n_steps`); at least
    /// `quadrature.minimumSteps`.
    public var steps: Int
    /// Where on the path the points lie and how they are weighted (Captum's `method`).
    public var quadrature: Quadrature
    /// The path's start x′ (Captum's `baselines`); zero by default.
    public var baseline: Baseline
    /// Path points per forward/backward pass (Captum's `internal_batch_size`).
    public var internalBatchSize: Int
    public var progress: AttributionProgress?

    /// Integrated Gradients with Captum's defaults: 50 Gauss–Legendre steps from a zero baseline.
    public init(steps: Int = 50, quadrature: Quadrature = .gaussLegendre, baseline: Baseline = .zero,
                internalBatchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.steps = steps
        self.quadrature = quadrature
        self.baseline = baseline
        self.internalBatchSize = internalBatchSize
        self.progress = progress
    }

    /// Forward/backward passes: ⌈steps · N / internalBatchSize⌉ (the path points of every
    /// input, a chunk per pass).
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: steps * inputShape[0], batchSize: internalBatchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        try quadrature.requireSteps(steps)
        let baselines = try baseline.expanded(like: inputs)
        let (alphas, weights) = quadrature.nodes(steps: steps)
        let evaluator = GradientEvaluator(model: model, batchSize: internalBatchSize, memoryChecked: true)
        let path = PathPoints(inputs: inputs, baselines: baselines, alphas: alphas)

        // Path points in Captum's order (step-major), evaluated a chunk at a time, each
        // gradient weighted and summed into its input's total.
        var total = [Float](repeating: 0, count: inputs.count)
        let passes = passCount(rows: path.count, batchSize: internalBatchSize)
        try PassMemory.require(rows: min(path.count, max(1, internalBatchSize)), rowShape: Array(inputs.shape.dropFirst()),
                               model: model, option: "the internal batch size (--internal-batch-size)")
        var start = 0, passed = 0
        while start < path.count {
            let end = min(path.count, start + max(1, internalBatchSize))
            let gradients = try evaluator.gradients(path.batch(start..<end),
                                                    targets: (start..<end).map { targets[path.row(of: $0)] }).gradients
            PathPoints.accumulate(gradients, range: start..<end, rows: path.rows, into: &total) {
                Float(weights[path.step(of: $0)])
            }
            passed += 1
            progress?(passed, passes)
            start = end
        }
        let attributions = Tensor(shape: inputs.shape, values: total).multiplying(path.difference)
        let delta = try convergenceDelta(attributions, model: model, inputs: inputs, baselines: baselines, targets: targets,
                                         batchSize: internalBatchSize)
        return Attribution(values: attributions, convergenceDelta: delta)
    }
}

/// Σ attributions − (F(inputs) − F(baselines)) per row: how far an attribution is from
/// completeness.
func convergenceDelta(_ attributions: Tensor, model: some AttributionModel, inputs: Tensor, baselines: Tensor,
                      targets: [Int], batchSize: Int) throws(ElucidateError) -> [Float] {
    let evaluator = GradientEvaluator(model: model, batchSize: batchSize)
    let end = try evaluator.scores(inputs, targets: targets)
    let start = try evaluator.scores(baselines, targets: targets)
    return zip(attributions.rowSums(), zip(end, start)).map { $0 - ($1.0 - $1.1) }
}
