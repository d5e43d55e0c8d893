import ElucidateCore
import ElucidateModels
import ElucidateNN

/// A classifier whose layers can be tapped by name: what the layer methods (Captum's
/// `LayerActivation`, `LayerGradCam`, `LayerIntegratedGradients`, …) need beyond
/// `AttributionModel`.
public protocol LayerAttributionModel: AttributionModel {
    /// The forward pass recorded in `graph` with `tap`'s layer tapped (or replaced): the
    /// logits `[N, classes]` and the layer's output (or input) as a graph variable.
    func logits(_ input: Variable, in graph: Graph, tapping tap: LayerTap) throws(ElucidateError) -> (logits: Variable, layer: Variable)
}

extension ResNet: LayerAttributionModel {}

extension Classifier: LayerAttributionModel {
    public func logits(_ input: Variable, in graph: Graph,
                       tapping tap: LayerTap) throws(ElucidateError) -> (logits: Variable, layer: Variable) {
        try network.logits(input, in: graph, tapping: tap)
    }
}

/// Which layer a layer method reads, as Captum's `layer` and `attribute_to_layer_input`.
public struct LayerChoice: Sendable, Equatable {
    /// The module's PyTorch path in the model's naming, e.g. `layer4` or `layer4.2.conv2`.
    public var name: String
    /// The module's input instead of its output (Captum's `attribute_to_layer_input`).
    public var atInput: Bool

    /// The output (or, with `atInput`, the input) of module `name`.
    public init(_ name: String, atInput: Bool = false) {
        self.name = name
        self.atInput = atInput
    }

    /// A tap on this layer, replacing it with `replacement` when given; with `stopsGradient`,
    /// an output tap ends the backward at the layer (see `LayerTap.stopsGradient`).
    func tap(replacing replacement: Tensor? = nil, stopsGradient: Bool = false) -> LayerTap {
        LayerTap(name, atInput: atInput, replacement: replacement, stopsGradient: stopsGradient && !atInput)
    }

    /// Whether the input must carry a gradient for the layer's gradient to be recorded: only
    /// for an input tap without replacement, which is an upstream tensor, not a new leaf.
    func needsInputGradient(replacing: Bool) -> Bool { atInput && !replacing }
}

extension AttributionMethod {
    /// `model` as a layered model, or an error naming `method`.
    func layered(_ model: some AttributionModel, method: String) throws(ElucidateError) -> any LayerAttributionModel {
        guard let layered = model as? any LayerAttributionModel else {
            throw ElucidateError(.invalidArgument, "\(method) needs a model whose layers can be named (a ResNet)")
        }
        return layered
    }

    /// The values `[N, …]` of `layer` for `inputs` `[N, C, H, W]` from forward passes alone,
    /// `batchSize` rows each (`passed` hears the passes done), after the inputs and targets are
    /// checked. With `spatial`, a layer whose output is not `[N, C, h, w]` is refused (a CAM
    /// needs positions).
    func layerValues(_ model: some AttributionModel, method: String, layer: LayerChoice, inputs: Tensor,
                     targets: [Int], batchSize: Int, spatial: Bool,
                     passed: (Int) -> Void = { _ in }) throws(ElucidateError) -> Tensor {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: method), layer: layer,
                                               batchSize: max(1, batchSize))
        let values = try evaluator.evaluate(inputs, targets: targets, gradients: false, passed: passed).values
        if spatial { try CAMMaps.requireSpatial(values, method: method, layer: layer) }
        return values
    }
}

/// The layer's values and the gradients of the target logits with respect to them, for a
/// batch computed in chunks of `batchSize` rows (one forward/backward pass each).
struct LayerGradientEvaluator {
    let model: any LayerAttributionModel
    let layer: LayerChoice
    /// Inputs per forward/backward pass.
    let batchSize: Int
    var reluRule: ReLUBackwardRule = .gradient

    /// For inputs `[B, C, H, W]` and B targets: the layer's values `[B, …]` and
    /// d logit[b, targets[b]] / d layer[b]. With `replacements` `[B, …]`, each row's layer is
    /// replaced by its row (Captum's layer-path methods), and those are the values returned.
    /// Without `gradients`, only the forward runs (the gradients returned are empty).
    func evaluate(_ inputs: Tensor, targets: [Int], replacements: Tensor? = nil, gradients wanted: Bool = true,
                  passed: (Int) -> Void = { _ in }) throws(ElucidateError) -> (values: Tensor, gradients: Tensor) {
        precondition(targets.count == inputs.shape[0], "one target per input")
        let rows = inputs.shape[0]
        try PassMemory.require(rows: min(rows, max(1, batchSize)), rowShape: Array(inputs.shape.dropFirst()), model: model,
                               option: "batch size")
        var values: [Tensor] = [], gradients: [Tensor] = []
        var start = 0, passes = 0
        while start < rows {
            let end = min(rows, start + max(1, batchSize))
            let graph = Graph(reluRule: reluRule)
            // An output tap (or a replacement) is a leaf of its own, so the input needs no gradient
            // and backward ends at the layer; an input tap is an upstream tensor, which needs the
            // ops before it recorded (backward then runs on to the input: correct, not minimal).
            let x = graph.input(inputs.rows(start..<end),
                                requiresGradient: wanted && layer.needsInputGradient(replacing: replacements != nil))
            let (logits, tapped) = try model.logits(x, in: graph, tapping: layer.tap(replacing: replacements?.rows(start..<end),
                                                                                     stopsGradient: wanted))
            values.append(tapped.value)
            if wanted {
                let seed = GradientEvaluator<ResNet>.seed(logits: logits.value, targets: targets[start..<end])
                gradients.append(try graph.gradients(of: logits, seed: seed, for: [tapped])[0])
            }
            passes += 1
            passed(passes)
            start = end
        }
        func joined(_ parts: [Tensor]) -> Tensor { parts.count == 1 ? parts[0] : Tensor.concatenatingRows(parts) }
        return (joined(values), wanted ? joined(gradients) : Tensor(zeros: [0]))
    }

    /// The target logits for inputs `[B, C, H, W]`, each row's layer replaced by its row of
    /// `replacements` `[B, …]` (no backward), `batchSize` rows per pass.
    func scores(_ inputs: Tensor, targets: [Int], replacements: Tensor) throws(ElucidateError) -> [Float] {
        var scores: [Float] = []
        let rows = inputs.shape[0]
        var start = 0
        while start < rows {
            let end = min(rows, start + max(1, batchSize))
            let graph = Graph(reluRule: reluRule)
            let x = graph.input(inputs.rows(start..<end), requiresGradient: false)
            let logits = try model.logits(x, in: graph, tapping: layer.tap(replacing: replacements.rows(start..<end))).logits
            let classes = logits.shape[1]
            logits.value.withUnsafeBufferPointer { values in
                for (row, target) in targets[start..<end].enumerated() { scores.append(values[row * classes + target]) }
            }
            start = end
        }
        return scores
    }
}
