/// ElucidateAttribution: every attribution method (gradients, integrated gradients, DeepLIFT,
/// GradientSHAP, noise tunnel, occlusion, feature ablation, Shapley value sampling, LIME,
/// KernelSHAP) and what they share (baselines, quadrature, progress, memory budgets). It may
/// depend on ElucidateCore, ElucidateNN, ElucidateModels, ElucidateImage and CKernels, and it
/// sees models only through `AttributionModel` and `PerturbationEvaluating`, never their
/// concrete types.

import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// A classifier that attribution methods can run forward and differentiate.
public protocol AttributionModel: Sendable {
    /// Number of classes (columns of the logits).
    var classes: Int { get }
    /// Logits `[N, classes]` for a batch `[N, C, H, W]`.
    func logits(_ input: Tensor) throws(ElucidateError) -> Tensor
    /// The same forward pass, recorded in `graph`.
    func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable
    /// For one input row of shape `rowShape` `[C, H, W]`, in floats: the outputs of all the
    /// network's leaf modules (what a recorded pass keeps) and the largest of them (what a
    /// plain forward pass holds a few of at a time), for memory estimates; zeros when unknown.
    func activationFloats(rowShape: [Int]) throws(ElucidateError) -> (total: Int, largest: Int)
}

extension AttributionModel {
    /// Unknown by default: memory estimates then count the inputs alone.
    public func activationFloats(rowShape: [Int]) throws(ElucidateError) -> (total: Int, largest: Int) { (0, 0) }
}

extension ResNet: AttributionModel {
    /// From the module shapes of a shape-only pass on one zero row; containers (`layer1`,
    /// `layer1.0`) are not counted again beside their children.
    public func activationFloats(rowShape: [Int]) throws(ElucidateError) -> (total: Int, largest: Int) {
        let layers = try layerNames(inputShape: [1] + rowShape)
        let containers = Set(layers.flatMap { layer in
            layer.name.split(separator: ".").dropLast().indices.map { layer.name.split(separator: ".")[...$0].joined(separator: ".") }
        })
        var total = 0, largest = 0
        for layer in layers where !containers.contains(layer.name) {
            let size = layer.outputShape.reduce(1) { saturatingProduct($0, $1) }
            total = saturatingSum(total, size)
            largest = max(largest, size)
        }
        return (total, largest)
    }
}

extension Classifier: AttributionModel {
    public func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        try network.logits(input, in: graph)
    }

    /// The network's (see `ResNet.activationFloats(rowShape:)`).
    public func activationFloats(rowShape: [Int]) throws(ElucidateError) -> (total: Int, largest: Int) {
        try network.activationFloats(rowShape: rowShape)
    }
}

/// What an attribution method returns.
public struct Attribution: Sendable {
    /// One attribution per input element: the inputs' shape `[N, C, H, W]`.
    public var values: Tensor
    /// Throws when the attributions or the convergence delta hold NaN or infinity — finite
    /// weights and inputs can still overflow float32 inside the model — naming `method` and the
    /// first bad element, so that no caller writes them as if they meant something.
    public func requireFinite(method: String) throws(ElucidateError) {
        let cause = "the model's arithmetic overflows float32 on this input (or its baseline)"
        if let bad = values.firstNonFiniteDescription() {
            throw ElucidateError(.invalidArgument, "\(method) gave non-finite attributions (\(bad)): \(cause)")
        }
        if let delta = convergenceDelta, let row = delta.firstIndex(where: { !$0.isFinite }) {
            let value = delta[row].isNaN ? "nan" : delta[row] > 0 ? "inf" : "-inf"
            throw ElucidateError(.invalidArgument,
                                 "\(method) gave a non-finite convergence delta (\(value) for input \(row)): \(cause)")
        }
    }

    /// Per input, Σ attributions − (F(input) − F(baseline)) for methods that satisfy
    /// completeness (Integrated Gradients, GradientSHAP, DeepLIFT); nil otherwise.
    public var convergenceDelta: [Float]?
    /// Facts about the run worth reporting, e.g. which baselines GradientSHAP drew from.
    public var details: [String: String]

    /// An attribution from its parts; `values` has the inputs' shape `[N, C, H, W]` and
    /// `convergenceDelta`, when given, N entries.
    public init(values: Tensor, convergenceDelta: [Float]? = nil, details: [String: String] = [:]) {
        self.values = values
        self.convergenceDelta = convergenceDelta
        self.details = details
    }
}

/// An attribution method: explains `targets[i]`'s logit for each input row `i`.
///
/// Sharing: a method is a value holding only its settings (and a seed where it samples);
/// `attribute` keeps all its working state (graphs, batches, random numbers) local to the
/// call. Methods and the model they explain may be shared across threads: concurrent calls,
/// of one method or of different ones, on one model give each the same floats, bit for bit,
/// as a sequential run. What must be set before work are `Runtime`'s settings (threads,
/// Winograd, instruction set); a `progress` closure is called on the thread running
/// `attribute`, so one shared by concurrent calls must be thread-safe itself.
public protocol AttributionMethod: Sendable {
    /// - Parameters:
    ///   - inputs: `[N, C, H, W]`, preprocessed as the model expects.
    ///   - targets: N class indices.
    func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution

    /// The same method for inputs whose rows are each repeated `times` times (a, a, b, b):
    /// per-input settings such as a baseline batch must be repeated alike. NoiseTunnel uses it.
    func repeatingPerInputSettings(_ times: Int) -> Self

    /// Called as `attribute` works, with (done, total) units of work (see `AttributionProgress`);
    /// nil for none. It never changes the attributions.
    var progress: AttributionProgress? { get set }

    /// The `total` that `attribute` reports to `progress` for inputs of shape `inputShape`
    /// `[N, C, H, W]` (with this method's settings, e.g. its feature mask).
    func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int

    /// Whether the method draws random numbers (from its seed), so the seed is worth
    /// reporting. False unless the method says so.
    var isStochastic: Bool { get }
}

extension AttributionMethod {
    public func repeatingPerInputSettings(_ times: Int) -> Self { self }
    public var isStochastic: Bool { false }
}

/// A method measured from a `baseline`: repeating its inputs repeats per-input baselines alike.
public protocol BaselineAttributionMethod: AttributionMethod {
    /// What the method compares the input with: zero, a constant, or a tensor.
    var baseline: Baseline { get set }
}

extension BaselineAttributionMethod {
    public func repeatingPerInputSettings(_ times: Int) -> Self {
        var copy = self
        copy.baseline = baseline.repeatingRows(times)
        return copy
    }
}

extension AttributionMethod {
    /// Checks the inputs' shape and `targets` against the model's classes.
    func validate(inputs: Tensor, targets: [Int], classes: Int) throws(ElucidateError) {
        guard inputs.rank == 4, inputs.shape[0] > 0 else {
            throw ElucidateError(.invalidArgument, "inputs must be a non-empty batch [N, C, H, W], got \(inputs.shape)")
        }
        guard targets.count == inputs.shape[0] else {
            throw ElucidateError(.invalidArgument, "\(targets.count) targets for \(inputs.shape[0]) inputs")
        }
        if let bad = targets.first(where: { $0 < 0 || $0 >= classes }) {
            throw ElucidateError(.invalidArgument, "target class \(bad) is out of range: the model has \(classes) classes")
        }
        try inputs.requireFinite("the input", advice: "attributions of NaN or infinity mean nothing")
    }
}
