import ElucidateCore
import ElucidateModels
import ElucidateNN

/// One unit of a layer as a one-output model: its "logits" `[N, 1]` are the unit's value, so
/// every input-attribution method explains the unit as it would a class (Captum's neuron
/// methods are exactly their input methods with the neuron as the output).
struct NeuronModel: AttributionModel {
    let model: any LayerAttributionModel
    let layer: LayerChoice
    /// The unit's index within one row of the layer: (C, H, W) for a feature map, (K) for `[N, K]`.
    let neuron: [Int]

    var classes: Int { 1 }

    func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
        let graph = Graph()
        return try logits(graph.input(input, requiresGradient: false), in: graph).value
    }

    func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        let tapped = try model.logits(input, in: graph, tapping: layer.tap()).layer
        let rowShape = Array(tapped.shape.dropFirst())
        guard neuron.count == rowShape.count, zip(neuron, rowShape).allSatisfy({ $0 >= 0 && $0 < $1 }) else {
            throw ElucidateError(.invalidArgument,
                                 "--neuron \(neuron.map(String.init).joined(separator: ",")) is not a unit of layer '\(layer.name)'\(layer.atInput ? "'s input" : ""), whose rows have shape \(rowShape)")
        }
        var flatIndex = 0
        for (index, size) in zip(neuron, rowShape) { flatIndex = flatIndex * size + index }
        let rowSize = rowShape.reduce(1, *)
        // Selecting the unit as a product with a one-hot row: exact forward (x·1 plus zeros)
        // and backward (the seed lands on the unit alone), with the graph's existing ops.
        var selector = Tensor(zeros: [1, rowSize])
        selector.withUnsafeMutableBufferPointer { $0[flatIndex] = 1 }
        let flat = graph.reshape(tapped, [tapped.shape[0], rowSize])
        return try graph.linear(flat, Linear(weight: selector, bias: nil))
    }
}

/// A neuron method, as Captum's `NeuronGradient`, `NeuronGuidedBackprop` and
/// `NeuronIntegratedGradients`: `method` (Saliency with sign, guided backpropagation,
/// Integrated Gradients) explaining one unit of a layer instead of a class logit.
///
/// Attributions have the input's shape `[N, C, H, W]`; the class targets are not used.
public struct NeuronAttribution<Method: AttributionMethod>: AttributionMethod {
    /// The input method applied to the unit.
    public var method: Method
    /// The layer holding the unit.
    public var layer: LayerChoice
    /// The unit's index in one row of the layer: (C, H, W), or (K) for a 2-D layer.
    public var neuron: [Int]

    /// `method` explaining unit `neuron` of `layer`.
    public init(_ method: Method, layer: LayerChoice, neuron: [Int]) {
        self.method = method
        self.layer = layer
        self.neuron = neuron
    }

    /// The wrapped method's progress.
    public var progress: AttributionProgress? {
        get { method.progress }
        set { method.progress = newValue }
    }

    public var isStochastic: Bool { method.isStochastic }

    public func repeatingPerInputSettings(_ times: Int) -> Self {
        var copy = self
        copy.method = method.repeatingPerInputSettings(times)
        return copy
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let neuronModel = NeuronModel(model: try layered(model, method: "a neuron method"), layer: layer, neuron: neuron)
        return try method.attribute(neuronModel, inputs: inputs, targets: Array(repeating: 0, count: inputs.shape[0]))
    }

    /// The wrapped method's total.
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        try method.progressTotal(inputShape: inputShape)
    }
}
