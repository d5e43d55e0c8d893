/// Saliency (Simonyan et al.): the gradient of the target logit with respect to the input,
/// as Captum's `Saliency` — by default its absolute value.
public struct Saliency: AttributionMethod {
    /// Keep the gradient's sign instead of taking |gradient|.
    public var signed: Bool
    /// Inputs per forward/backward pass.
    public var batchSize: Int

    public init(signed: Bool = false, batchSize: Int = 16) {
        self.signed = signed
        self.batchSize = batchSize
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let gradients = try evaluator.gradients(inputs, targets: targets).gradients
        return Attribution(values: signed ? gradients : gradients.map { abs($0) })
    }
}

/// Input × Gradient: the gradient of the target logit times the input, element-wise.
public struct InputXGradient: AttributionMethod {
    public var batchSize: Int

    public init(batchSize: Int = 16) {
        self.batchSize = batchSize
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let gradients = try evaluator.gradients(inputs, targets: targets).gradients
        return Attribution(values: gradients.multiplying(inputs))
    }
}

/// Guided backpropagation (Springenberg et al.) or deconvolution (Zeiler & Fergus): the
/// gradient with each ReLU's backward replaced, as Captum's `GuidedBackprop`/`Deconvolution`.
public struct ModifiedGradient: AttributionMethod {
    public enum Rule: Sendable { case guidedBackprop, deconvolution }
    public var rule: Rule
    public var batchSize: Int

    public init(_ rule: Rule, batchSize: Int = 16) {
        self.rule = rule
        self.batchSize = batchSize
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        var evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        evaluator.reluRule = rule == .guidedBackprop ? .guided : .deconvolution
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        return Attribution(values: try evaluator.gradients(inputs, targets: targets).gradients)
    }
}
