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
        guard steps >= quadrature.minimumSteps else {
            throw ElucidateError(.invalidArgument, "\(quadrature.rawValue) needs at least \(quadrature.minimumSteps) steps, got \(steps)")
        }
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "layer-integrated-gradients"),
                                               layer: layer, batchSize: internalBatchSize)
        let total = progressTotal(inputShape: inputs.shape)
        let forwardPasses = passCount(rows: inputs.shape[0], batchSize: internalBatchSize)
        let baselines = try baseline.expanded(like: inputs)
        let end = try evaluator.evaluate(inputs, targets: targets, gradients: false,
                                         passed: { progress?($0, total) }).values
        let start = try evaluator.evaluate(baselines, targets: targets, gradients: false,
                                           passed: { progress?(forwardPasses + $0, total) }).values
        let difference = end.zipMap(start) { $0 - $1 }
        let (alphas, weights) = quadrature.nodes(steps: steps)
        let rows = inputs.shape[0], rowSize = end.count / rows, inputRowSize = inputs.count / rows

        // Path points in Captum's order (step-major), a chunk per pass; every point runs the
        // input itself with the layer replaced by its point on the path.
        var totals = [Float](repeating: 0, count: end.count)
        let points = steps * rows
        var first = 0, passed = 2 * forwardPasses
        while first < points {
            let last = min(points, first + max(1, internalBatchSize))
            var layerBatch = [Float](repeating: 0, count: (last - first) * rowSize)
            var inputBatch = [Float](repeating: 0, count: (last - first) * inputRowSize)
            start.withUnsafeBufferPointer { base in
                difference.withUnsafeBufferPointer { delta in
                    inputs.withUnsafeBufferPointer { x in
                        for point in first..<last {
                            let (step, row) = (point / rows, point % rows)
                            let alpha = Float(alphas[step])
                            for i in 0..<rowSize {
                                layerBatch[(point - first) * rowSize + i] = base[row * rowSize + i] + alpha * delta[row * rowSize + i]
                            }
                            for i in 0..<inputRowSize {
                                inputBatch[(point - first) * inputRowSize + i] = x[row * inputRowSize + i]
                            }
                        }
                    }
                }
            }
            let chunkEvaluator = LayerGradientEvaluator(model: evaluator.model, layer: layer, batchSize: last - first)
            let gradients = try chunkEvaluator.evaluate(
                Tensor(shape: [last - first] + inputs.shape.dropFirst(), values: inputBatch),
                targets: (first..<last).map { targets[$0 % rows] },
                replacements: Tensor(shape: [last - first] + end.shape.dropFirst(), values: layerBatch)).gradients
            gradients.withUnsafeBufferPointer { g in
                for point in first..<last {
                    let (step, row) = (point / rows, point % rows)
                    let weight = Float(weights[step])
                    for i in 0..<rowSize { totals[row * rowSize + i] += weight * g[(point - first) * rowSize + i] }
                }
            }
            passed += 1
            progress?(passed, total)
            first = last
        }
        let attributions = Tensor(shape: end.shape, values: totals).multiplying(difference)
        let delta = try convergenceDelta(attributions, model: model, inputs: inputs, baselines: baselines,
                                         targets: targets, batchSize: internalBatchSize)
        return Attribution(values: attributions, convergenceDelta: delta)
    }
}
