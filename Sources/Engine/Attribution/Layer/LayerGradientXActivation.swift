import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Layer Gradient × Activation, as Captum's `LayerGradientXActivation`: the gradient of the
/// target logit with respect to a layer's output (or input), times that output, element-wise
/// — or the gradient alone when `multiplyByInputs` is false. Shape: the layer's `[N, …]`.
public struct LayerGradientXActivation: AttributionMethod {
    /// The layer attributed to.
    public var layer: LayerChoice
    /// Multiply the gradient by the activation (Captum's `multiply_by_inputs`, default true).
    public var multiplyByInputs: Bool
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Gradient × activation of `layer`, `batchSize` inputs per pass.
    public init(layer: LayerChoice, multiplyByInputs: Bool = true, batchSize: Int = 16,
                progress: AttributionProgress? = nil) {
        self.layer = layer
        self.multiplyByInputs = multiplyByInputs
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "layer-gradient-x-activation"),
                                               layer: layer, batchSize: batchSize)
        let total = progressTotal(inputShape: inputs.shape)
        let (values, gradients) = try evaluator.evaluate(inputs, targets: targets, passed: { progress?($0, total) })
        return Attribution(values: multiplyByInputs ? gradients.multiplying(values) : gradients)
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
