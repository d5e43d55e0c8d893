import ElucidateCore
import ElucidateModels
import ElucidateNN

extension LayerGradientEvaluator {
    /// The layer's values and target gradients at the input-space path points
    /// `baseline + α(input − baseline)` for every α, in Captum's order (step-major: all rows
    /// at α₀, then at α₁, …), `batchSize` points per pass. `body` hears each pass's range of
    /// points, the points themselves `[points, C, H, W]`, and the layer's values and gradients
    /// `[points, …]` there; `passed` the passes done.
    func alongPath(_ inputs: Tensor, baselines: Tensor, alphas: [Double], targets: [Int],
                   passed: (Int) -> Void,
                   _ body: (Range<Int>, Tensor, Tensor, Tensor) throws(ElucidateError) -> Void) throws(ElucidateError) {
        let path = PathPoints(inputs: inputs, baselines: baselines, alphas: alphas)
        try PassMemory.require(rows: min(path.count, max(1, batchSize)), rowShape: Array(inputs.shape.dropFirst()),
                               model: model, option: "the internal batch size (--internal-batch-size)")
        var first = 0, passes = 0
        while first < path.count {
            let last = min(path.count, first + max(1, batchSize))
            let chunk = LayerGradientEvaluator(model: model, layer: layer, batchSize: last - first, reluRule: reluRule)
            let pointTensor = path.batch(first..<last)
            let (values, gradients) = try chunk.evaluate(pointTensor, targets: (first..<last).map { targets[path.row(of: $0)] })
            try body(first..<last, pointTensor, values, gradients)
            passes += 1
            passed(passes)
            first = last
        }
    }
}

/// Layer Conductance (Dhamdhere et al.), as Captum's `LayerConductance`: the flow of
/// Integrated Gradients through each unit of a layer. With input-space path points
/// x₀ … xₙ (`steps + 1` quadrature nodes from the baseline to the input) and the layer's
/// values aᵢ there, `Σᵢ₌₀ⁿ⁻¹ ∂F/∂a(xᵢ) · (aᵢ₊₁ − aᵢ)` — Captum's own discretisation.
///
/// Shape: the layer's `[N, …]`. The convergence delta is Σ attributions − (F(x) − F(x′)).
/// Memory: the layer's values and gradients at all `(steps + 1) · N` points are kept.
public struct LayerConductance: BaselineAttributionMethod {
    /// The layer attributed to.
    public var layer: LayerChoice
    /// Path intervals (Captum's `n_steps`); the path has `steps + 1` points.
    public var steps: Int
    /// Where the `steps + 1` points lie (Captum's `method`; weights are not used).
    public var quadrature: Quadrature
    /// The input-space path start x′; zero by default.
    public var baseline: Baseline
    /// Path points per forward/backward pass.
    public var internalBatchSize: Int
    public var progress: AttributionProgress?

    /// Layer conductance with Captum's defaults: 50 steps, Gauss–Legendre points, zero baseline.
    public init(layer: LayerChoice, steps: Int = 50, quadrature: Quadrature = .gaussLegendre,
                baseline: Baseline = .zero, internalBatchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.steps = steps
        self.quadrature = quadrature
        self.baseline = baseline
        self.internalBatchSize = internalBatchSize
        self.progress = progress
    }

    /// Forward/backward passes: ⌈(steps + 1) · N / internalBatchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: (steps + 1) * inputShape[0], batchSize: internalBatchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard steps >= 1 else { throw ElucidateError(.invalidArgument, "layer conductance needs at least 1 step, got \(steps)") }
        try quadrature.requireSteps(steps + 1)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "layer-conductance"), layer: layer,
                                               batchSize: internalBatchSize)
        let baselines = try baseline.expanded(like: inputs)
        let alphas = quadrature.nodes(steps: steps + 1).alphas
        let rows = inputs.shape[0], total = progressTotal(inputShape: inputs.shape)
        var values: [Float] = [], gradients: [Float] = []
        var layerShape: [Int] = []
        try evaluator.alongPath(inputs, baselines: baselines, alphas: alphas, targets: targets,
                                passed: { progress?($0, total) }) { _, _, value, gradient in
            layerShape = Array(value.shape.dropFirst())
            values += value.scalars
            gradients += gradient.scalars
        }
        let rowSize = layerShape.reduce(1, *)
        var attributions = [Float](repeating: 0, count: rows * rowSize)
        for step in 0..<steps {
            for row in 0..<rows {
                let here = (step * rows + row) * rowSize, next = ((step + 1) * rows + row) * rowSize
                for i in 0..<rowSize {
                    attributions[row * rowSize + i] += (values[next + i] - values[here + i]) * gradients[here + i]
                }
            }
        }
        let result = Tensor(shape: [rows] + layerShape, values: attributions)
        let delta = try convergenceDelta(result, model: model, inputs: inputs, baselines: baselines, targets: targets,
                                         batchSize: internalBatchSize)
        return Attribution(values: result, convergenceDelta: delta)
    }
}

/// Internal Influence (Leino et al.), as Captum's `InternalInfluence`: the layer's gradient
/// integrated along the input-space path from the baseline, `Σᵢ wᵢ ∂F/∂a(x′ + αᵢ(x − x′))`,
/// by the same quadrature as Integrated Gradients (not multiplied by any difference).
///
/// Shape: the layer's `[N, …]`.
public struct InternalInfluence: BaselineAttributionMethod {
    /// The layer attributed to.
    public var layer: LayerChoice
    /// Points on the path (Captum's `n_steps`); at least `quadrature.minimumSteps`.
    public var steps: Int
    /// Where the points lie and how they are weighted (Captum's `method`).
    public var quadrature: Quadrature
    /// The input-space path start x′; zero by default.
    public var baseline: Baseline
    /// Path points per forward/backward pass.
    public var internalBatchSize: Int
    public var progress: AttributionProgress?

    /// Internal influence with Captum's defaults: 50 Gauss–Legendre steps, zero baseline.
    public init(layer: LayerChoice, steps: Int = 50, quadrature: Quadrature = .gaussLegendre,
                baseline: Baseline = .zero, internalBatchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.steps = steps
        self.quadrature = quadrature
        self.baseline = baseline
        self.internalBatchSize = internalBatchSize
        self.progress = progress
    }

    /// Forward/backward passes: ⌈steps · N / internalBatchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: steps * inputShape[0], batchSize: internalBatchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        try quadrature.requireSteps(steps)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "internal-influence"), layer: layer,
                                               batchSize: internalBatchSize)
        let (alphas, weights) = quadrature.nodes(steps: steps)
        let rows = inputs.shape[0], total = progressTotal(inputShape: inputs.shape)
        var totals: [Float] = []
        var layerShape: [Int] = []
        try evaluator.alongPath(inputs, baselines: try baseline.expanded(like: inputs), alphas: alphas, targets: targets,
                                passed: { progress?($0, total) }) { range, _, _, gradient in
            layerShape = Array(gradient.shape.dropFirst())
            if totals.isEmpty { totals = [Float](repeating: 0, count: rows * layerShape.reduce(1, *)) }
            PathPoints.accumulate(gradient, range: range, rows: rows, into: &totals) { Float(weights[$0 / rows]) }
        }
        return Attribution(values: Tensor(shape: [rows] + layerShape, values: totals))
    }
}
