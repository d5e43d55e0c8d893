import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Neuron Conductance (Dhamdhere et al.), as Captum's `NeuronConductance`: how much each
/// input element's Integrated Gradients flows through one unit of a layer,
/// `(x − x′) · Σᵢ wᵢ · ∂F/∂u(xᵢ) · ∂u/∂x(xᵢ)` over the quadrature's path points xᵢ, with `u`
/// the unit and `F` the target logit.
///
/// Shape: the input's `[N, C, H, W]`. Each path point costs two passes: one for ∂F/∂u, one
/// for ∂u/∂x.
public struct NeuronConductance: BaselineAttributionMethod {
    /// The layer holding the unit.
    public var layer: LayerChoice
    /// The unit's index in one row of the layer: (C, H, W), or (K) for a 2-D layer.
    public var neuron: [Int]
    /// Points on the path (Captum's `n_steps`).
    public var steps: Int
    /// Where the points lie and how they are weighted (Captum's `method`).
    public var quadrature: Quadrature
    /// The path's start x′; zero by default.
    public var baseline: Baseline
    /// Path points per forward/backward pass.
    public var internalBatchSize: Int
    public var progress: AttributionProgress?

    /// Neuron conductance of unit `neuron` of `layer`.
    public init(layer: LayerChoice, neuron: [Int], steps: Int = 50, quadrature: Quadrature = .gaussLegendre,
                baseline: Baseline = .zero, internalBatchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.neuron = neuron
        self.steps = steps
        self.quadrature = quadrature
        self.baseline = baseline
        self.internalBatchSize = internalBatchSize
        self.progress = progress
    }

    /// Passes: 2 · ⌈steps · N / internalBatchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        2 * passCount(rows: steps * inputShape[0], batchSize: internalBatchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        try quadrature.requireSteps(steps)
        let layered = try self.layered(model, method: "neuron-conductance")
        let neuronModel = NeuronModel(model: layered, layer: layer, neuron: neuron)
        let evaluator = LayerGradientEvaluator(model: layered, layer: layer, batchSize: internalBatchSize)
        let baselines = try baseline.expanded(like: inputs)
        let (alphas, weights) = quadrature.nodes(steps: steps)
        let rows = inputs.shape[0], total = progressTotal(inputShape: inputs.shape)
        var totals = [Float](repeating: 0, count: inputs.count)
        var passes = 0
        try evaluator.alongPath(inputs, baselines: baselines, alphas: alphas, targets: targets,
                                passed: { _ in passes += 1; progress?(passes, total) }) { range, points, _, gradients throws(ElucidateError) in
            // ∂F/∂u at each point: the layer gradient at the unit (checked by NeuronModel below).
            let unitGradients = try neuronModel.unitValues(of: gradients)
            let inputGradients = try GradientEvaluator(model: neuronModel, batchSize: range.count)
                .gradients(points, targets: Array(repeating: 0, count: range.count)).gradients
            passes += 1
            progress?(passes, total)
            PathPoints.accumulate(inputGradients, range: range, rows: rows, into: &totals) {
                Float(weights[$0 / rows]) * unitGradients[$0 - range.lowerBound]
            }
        }
        let attributions = Tensor(shape: inputs.shape, values: totals).multiplying(inputs.zipMap(baselines) { $0 - $1 })
        return Attribution(values: attributions)
    }
}

extension NeuronModel {
    /// Each row's entry at the unit, from a tensor of the layer's shape `[B, …]`.
    func unitValues(of tensor: Tensor) throws(ElucidateError) -> [Float] {
        let rowShape = Array(tensor.shape.dropFirst())
        guard neuron.count == rowShape.count, zip(neuron, rowShape).allSatisfy({ $0 >= 0 && $0 < $1 }) else {
            throw ElucidateError(.invalidArgument,
                                 "--neuron \(neuron.map(String.init).joined(separator: ",")) is not a unit of layer '\(layer.name)'\(layer.atInput ? "'s input" : ""), whose rows have shape \(rowShape)")
        }
        var flatIndex = 0
        for (index, size) in zip(neuron, rowShape) { flatIndex = flatIndex * size + index }
        let rowSize = rowShape.reduce(1, *)
        return tensor.withUnsafeBufferPointer { values in
            (0..<tensor.shape[0]).map { values[$0 * rowSize + flatIndex] }
        }
    }
}
