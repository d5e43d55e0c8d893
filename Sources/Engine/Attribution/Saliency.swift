import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Saliency (Simonyan et al.): the gradient of the target logit with respect to the input,
/// as Captum's `Saliency` — by default its absolute value.
public struct Saliency: AttributionMethod {
    /// Keep the gradient's sign instead of taking |gradient|.
    public var signed: Bool
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Saliency (|gradient| unless `signed`), `batchSize` inputs per pass.
    public init(signed: Bool = false, batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.signed = signed
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let total = passCount(rows: inputs.shape[0], batchSize: batchSize)
        let gradients = try evaluator.gradients(inputs, targets: targets, passed: { progress?($0, total) }).gradients
        return Attribution(values: signed ? gradients : gradients.map { abs($0) })
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}

/// Input × Gradient: the gradient of the target logit times the input, element-wise.
public struct InputXGradient: AttributionMethod {
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Input × Gradient, `batchSize` inputs per pass.
    public init(batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let total = passCount(rows: inputs.shape[0], batchSize: batchSize)
        let gradients = try evaluator.gradients(inputs, targets: targets, passed: { progress?($0, total) }).gradients
        return Attribution(values: gradients.multiplying(inputs))
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}

/// Guided backpropagation (Springenberg et al.) or deconvolution (Zeiler & Fergus): the
/// gradient with each ReLU's backward replaced, as Captum's `GuidedBackprop`/`Deconvolution`.
public struct ModifiedGradient: AttributionMethod {
    /// How each ReLU passes the gradient back.
    public enum Rule: Sendable {
        /// Guided backpropagation: only positive gradients pass back, and only where the ReLU was active.
        case guidedBackprop
        /// Deconvolution: the ReLU applied to the gradient, whatever the forward did.
        case deconvolution
    }
    /// Which ReLU backward rule replaces the gradient's.
    public var rule: Rule
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Guided backpropagation or deconvolution, `batchSize` inputs per pass.
    public init(_ rule: Rule, batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.rule = rule
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        var evaluator = GradientEvaluator(model: model, batchSize: batchSize)
        evaluator.reluRule = rule == .guidedBackprop ? .guided : .deconvolution
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let total = passCount(rows: inputs.shape[0], batchSize: batchSize)
        return Attribution(values: try evaluator.gradients(inputs, targets: targets, passed: { progress?($0, total) }).gradients)
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
