import ElucidateCore
import ElucidateNN

// Layers by name: PyTorch's module paths (`layer4.2.conv2`, fastai's `0.7.2.conv2`), a
// forward pass in a Graph that taps or replaces one of them, and the list of names with
// their output shapes.
//
// Folded batch norms. The fast forward folds every batch norm into the convolution before
// it and fuses ReLUs into the kernels, so `layer4.2.conv2`'s output (before `bn2` in
// PyTorch) never exists there. Un-applying the folded affine per channel would divide by
// γ/√(σ²+ε), which loses precision where it is small and is undefined where γ = 0; instead
// the network keeps its unfolded convolutions and batch norms (the state dict's own tensors,
// so no weight is copied), and the block (or stem) that holds the tapped layer runs unfolded,
// op by op as PyTorch does. Every other block runs folded, as usual.
//
// torchvision's shared `relu`. A BasicBlock calls its one `relu` module twice (after `bn1`
// and after the residual add), a Bottleneck three times; a forward hook fires on every call
// and Captum keeps the last call's tensor, which is the block's output (its input: the sum
// before the ReLU). `layerX.Y.relu` is therefore that last call. Replacing its output would
// replace every call in PyTorch (with shapes that differ in a Bottleneck), which is never
// what is meant, so a replacement there is refused: replace the block instead.

/// Which layer a forward pass taps (and optionally replaces), by PyTorch module path.
public struct LayerTap: Sendable {
    /// The module's path in the model's own naming (`layer4.2.conv2`, or fastai's `0.7.2.conv2`).
    public var name: String
    /// Tap the module's input (Captum's `attribute_to_layer_input`) instead of its output.
    public var atInput: Bool
    /// When set, the forward uses this tensor in place of the module's output (or input), as
    /// a Captum forward hook returning a tensor does. Its shape must be the replaced one's.
    public var replacement: Tensor?
    /// When set (and tapping an output), the output continues as a new leaf holding the same
    /// values, so a backward from the logits ends at the layer and spends nothing below it.
    /// Not for gradients below the layer (neuron methods), nor for inputs: an input tensor has
    /// other uses (a block's shortcut) whose gradients Captum counts.
    public var stopsGradient: Bool

    /// A tap on `name`'s output (or its input when `atInput`), optionally replacing it.
    public init(_ name: String, atInput: Bool = false, replacement: Tensor? = nil, stopsGradient: Bool = false) {
        self.name = name
        self.atInput = atInput
        self.replacement = replacement
        self.stopsGradient = stopsGradient
    }
}

/// A named module and the shape of its output for a given input.
public struct LayerInfo: Sendable, Equatable {
    /// The module's path, as PyTorch's `named_modules()` spells it.
    public var name: String
    /// Its output's shape `[N, …]` for the input shape asked about.
    public var outputShape: [Int]
}

/// Carries one tap through a forward pass, or records every module's output shape.
final class LayerHook {
    /// The tapped module in torchvision's names; nil records shapes instead.
    let target: String?
    let atInput: Bool
    let replacement: Tensor?
    let stopsGradient: Bool
    /// The tapped module's output (or input) as a graph variable, once the forward passed it.
    var captured: Variable?
    /// Output shapes by torchvision name (recording mode).
    var shapes: [String: [Int]] = [:]

    init(target: String?, atInput: Bool, replacement: Tensor?, stopsGradient: Bool = false) {
        self.target = target
        self.atInput = atInput
        self.replacement = replacement
        self.stopsGradient = stopsGradient
    }

    /// Whether the module `prefix` (a block or the stem) must run unfolded: it holds the
    /// tapped module, or shapes are being recorded.
    func unfolds(_ prefix: String) -> Bool {
        guard let target else { return true }
        return target.hasPrefix(prefix + ".")
    }

    /// Runs module `name` (`body`) on `x`, tapping or replacing its input or output.
    func module(_ name: String, _ x: Variable, in graph: Graph,
                _ body: (Variable) throws(ElucidateError) -> Variable) throws(ElucidateError) -> Variable {
        guard let target else {
            let y = try body(x)
            shapes[name] = y.shape
            return y
        }
        guard target == name else { return try body(x) }
        var input = x
        if atInput {
            if let replacement { input = try leaf(replacement, replacing: x, in: graph) }
            captured = input
        }
        var y = try body(input)
        if !atInput {
            if let replacement {
                y = try leaf(replacement, replacing: y, in: graph)
            } else if stopsGradient {
                y = graph.input(y.value)
            }
            captured = y
        }
        return y
    }

    private func leaf(_ replacement: Tensor, replacing original: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        guard replacement.shape == original.shape else {
            throw ElucidateError(.invalidArgument,
                                 "the replacement for layer '\(target ?? "")' has shape \(replacement.shape), the layer's \(atInput ? "input" : "output") has \(original.shape)")
        }
        return graph.input(replacement)
    }
}

extension ResNet {
    /// Every module's path in this model's naming, in PyTorch's `named_modules()` order
    /// (the root excluded): torchvision's `conv1` … `fc`, or fastai's `0`, `0.0` … `1.8`.
    public var layerNames: [String] {
        var body: [String] = ["conv1", "bn1", "relu"]
        if stemPool != nil { body.append("maxpool") }
        for (stage, blocks) in stages.enumerated() {
            body.append("layer\(stage + 1)")
            for (index, block) in blocks.enumerated() {
                let prefix = "layer\(stage + 1).\(index)"
                body.append(prefix)
                var children: [String] = []
                for conv in 1...block.convolutions.count {
                    children += ["conv\(conv)", "bn\(conv)"]
                    // torchvision registers `relu` after bn1 (BasicBlock) or bn3 (Bottleneck).
                    if conv == (block.convolutions.count == 2 ? 1 : 3) { children.append("relu") }
                }
                if block.downsample != nil { children += ["downsample", "downsample.0", "downsample.1"] }
                body += children.map { "\(prefix).\($0)" }
            }
        }
        switch head {
        case .linear:
            return body + ["avgpool", "fc"]
        case .fastai:
            return ["0"] + body.map(Self.fastaiName)
                + ["1"] + (0...8).map { "1.\($0)" }
        }
    }

    /// Each module's path and output shape for an input of shape `inputShape` `[N, C, H, W]`
    /// (one forward pass on zeros), in `layerNames` order.
    public func layerNames(inputShape: [Int]) throws(ElucidateError) -> [LayerInfo] {
        try validate(inputShape: inputShape)
        let hook = LayerHook(target: nil, atInput: false, replacement: nil)
        let graph = Graph()
        _ = try logits(graph.input(Tensor(zeros: inputShape), requiresGradient: false), in: graph, hook: hook)
        return layerNames.map { LayerInfo(name: $0, outputShape: hook.shapes[internalName($0)] ?? []) }
    }

    /// The torchvision name of `name` (a path in this model's naming), or an error naming the
    /// closest known paths.
    public func resolveLayer(_ name: String) throws(ElucidateError) -> String {
        let names = layerNames
        guard names.contains(name) else {
            let close = Self.closest(to: name, among: names)
            throw ElucidateError(.invalidArgument,
                                 "unknown layer '\(name)' for \(architecture.description)"
                                 + (close.isEmpty ? "" : " (did you mean \(close.map { "'\($0)'" }.joined(separator: ", "))?)")
                                 + "; `elucidate models --layers MODEL` lists them")
        }
        return internalName(name)
    }

    /// The forward pass recorded in `graph` with `tap`'s layer tapped: the logits `[N, classes]`
    /// and the layer's output (or input) as a variable whose gradient `graph.gradients` can
    /// return — the replacement leaf when `tap.replacement` is set.
    ///
    /// - Throws: `.invalidArgument` for an unknown layer (naming close matches), a replacement
    ///   of the wrong shape, or a replacement of a block's shared `relu`.
    public func logits(_ input: Variable, in graph: Graph,
                       tapping tap: LayerTap) throws(ElucidateError) -> (logits: Variable, layer: Variable) {
        let name = try resolveLayer(tap.name)
        if tap.replacement != nil && tapsSharedReLU(name) {
            throw ElucidateError(.invalidArgument,
                                 "layer '\(tap.name)' is one ReLU module called several times in its block; PyTorch would replace every call: replace the block ('\(tap.name.dropLast(5))') instead")
        }
        let hook = LayerHook(target: name, atInput: tap.atInput, replacement: tap.replacement,
                             stopsGradient: tap.stopsGradient)
        let logits = try self.logits(input, in: graph, hook: hook)
        guard let layer = hook.captured else {
            throw ElucidateError(.invalidArgument, "layer '\(tap.name)' is not reached by the forward pass")
        }
        return (logits, layer)
    }

    /// fastai body paths and the torchvision paths they stand for (the state-dict layout's
    /// list, plus the parameter-free `relu` and `maxpool`).
    private static let fastaiModules: [(fastai: String, torchvision: String)] =
        ResNetKeyLayout.fastaiBody + [("0.2.", "relu."), ("0.3.", "maxpool.")]

    /// `name` (this model's naming) in torchvision's names; fastai's `0` and `1.*` unchanged.
    func internalName(_ name: String) -> String {
        guard case .fastai = head else { return name }
        let dotted = name + "."
        for (fastai, torchvision) in Self.fastaiModules where dotted.hasPrefix(fastai) {
            return String((torchvision + dotted.dropFirst(fastai.count)).dropLast())
        }
        return name
    }

    /// A torchvision body path as fastai spells it.
    private static func fastaiName(_ name: String) -> String {
        let dotted = name + "."
        for (fastai, torchvision) in fastaiModules where dotted.hasPrefix(torchvision) {
            return String((fastai + dotted.dropFirst(torchvision.count)).dropLast())
        }
        return name
    }

    /// Whether `name` (torchvision's naming) is a block's `relu`, called more than once.
    private func tapsSharedReLU(_ name: String) -> Bool {
        name.hasPrefix("layer") && name.hasSuffix(".relu")
    }

    /// The forward pass with `hook` on every named module.
    func logits(_ input: Variable, in graph: Graph, hook: LayerHook) throws(ElucidateError) -> Variable {
        try validate(inputShape: input.shape)
        let body = try hook.module("0", input, in: graph) { x throws(ElucidateError) in
            var x = x
            if hook.unfolds("") || ["conv1", "bn1", "relu"].contains(hook.target ?? "") {
                x = try hook.module("conv1", x, in: graph) { x throws(ElucidateError) in try graph.conv2d(x, unfoldedStem.conv) }
                x = try hook.module("bn1", x, in: graph) { x throws(ElucidateError) in try graph.batchNorm(x, unfoldedStem.norm) }
                x = try hook.module("relu", x, in: graph) { x in graph.relu(x) }
            } else {
                x = try graph.conv2d(x, stem)
            }
            if let stemPool {
                x = try hook.module("maxpool", x, in: graph) { x throws(ElucidateError) in try graph.pool(x, stemPool) }
            }
            for (stage, blocks) in stages.enumerated() {
                x = try hook.module("layer\(stage + 1)", x, in: graph) { x throws(ElucidateError) in
                    var x = x
                    for (index, block) in blocks.enumerated() {
                        let prefix = "layer\(stage + 1).\(index)"
                        x = try hook.module(prefix, x, in: graph) { x throws(ElucidateError) in
                            hook.unfolds(prefix) ? try block.unfolded(x, prefix: prefix, in: graph, hook: hook)
                                                 : try block(x, in: graph)
                        }
                    }
                    return x
                }
            }
            return x
        }
        return try hook.module("1", body, in: graph) { x throws(ElucidateError) in try runHead(x, in: graph, hook: hook) }
    }
}

extension ResidualBlock {
    /// The block op by op as PyTorch runs it (convolutions, batch norms and ReLUs apart),
    /// every module passed through `hook`.
    func unfolded(_ input: Variable, prefix: String, in graph: Graph, hook: LayerHook) throws(ElucidateError) -> Variable {
        var x = input
        for (index, layer) in unfolded.enumerated() {
            x = try hook.module("\(prefix).conv\(index + 1)", x, in: graph) { x throws(ElucidateError) in try graph.conv2d(x, layer.conv) }
            x = try hook.module("\(prefix).bn\(index + 1)", x, in: graph) { x throws(ElucidateError) in try graph.batchNorm(x, layer.norm) }
            if index < unfolded.count - 1 { x = graph.relu(x) }  // earlier calls of the shared relu: see the file's comment
        }
        var shortcut = input
        if let unfoldedDownsample {
            shortcut = try hook.module("\(prefix).downsample", input, in: graph) { s throws(ElucidateError) in
                let conv = try hook.module("\(prefix).downsample.0", s, in: graph) { s throws(ElucidateError) in
                    try graph.conv2d(s, unfoldedDownsample.conv)
                }
                return try hook.module("\(prefix).downsample.1", conv, in: graph) { s throws(ElucidateError) in
                    try graph.batchNorm(s, unfoldedDownsample.norm)
                }
            }
        }
        return try hook.module("\(prefix).relu", graph.add(x, shortcut), in: graph) { sum in graph.relu(sum) }
    }
}

extension ResNet {
    /// The head with its modules passed through `hook`: torchvision's `avgpool`, `fc`, or
    /// fastai's `1.0` … `1.8` (dropouts are identities at inference).
    func runHead(_ features: Variable, in graph: Graph, hook: LayerHook) throws(ElucidateError) -> Variable {
        switch head {
        case .linear(let fc):
            let pooled = try hook.module("avgpool", features, in: graph) { x throws(ElucidateError) in
                try graph.adaptivePool(x, AdaptivePool2d(.average, outputSize: 1))
            }
            let flat = graph.reshape(pooled, [pooled.shape[0], pooled.shape[1]])
            return try hook.module("fc", flat, in: graph) { x throws(ElucidateError) in try graph.linear(x, fc) }
        case .fastai(let head):
            var x = try hook.module("1.0", features, in: graph) { x throws(ElucidateError) in
                graph.concatenateChannels([try graph.adaptivePool(x, FastaiHead.maxPool),
                                           try graph.adaptivePool(x, FastaiHead.averagePool)])
            }
            x = try hook.module("1.1", x, in: graph) { x in graph.reshape(x, [x.shape[0], x.shape[1]]) }
            x = try hook.module("1.2", x, in: graph) { x throws(ElucidateError) in try graph.batchNorm(x, head.firstNorm) }
            x = try hook.module("1.3", x, in: graph) { x in x }
            x = try hook.module("1.4", x, in: graph) { x throws(ElucidateError) in try graph.linear(x, head.hidden) }
            x = try hook.module("1.5", x, in: graph) { x in graph.relu(x) }
            x = try hook.module("1.6", x, in: graph) { x throws(ElucidateError) in try graph.batchNorm(x, head.secondNorm) }
            x = try hook.module("1.7", x, in: graph) { x in x }
            return try hook.module("1.8", x, in: graph) { x throws(ElucidateError) in try graph.linear(x, head.output) }
        }
    }

    /// Up to three of `names` closest to `name` (edit distance, then shared suffix).
    static func closest(to name: String, among names: [String]) -> [String] {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1] + Array(repeating: 0, count: b.count)
                for (j, cb) in b.enumerated() {
                    current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
                }
                previous = current
            }
            return previous[b.count]
        }
        let target = Array(name)
        let scored = names.map { ($0, distance(target, Array($0))) }
            .filter { $0.1 <= Swift.max(2, name.count / 3) }
            .sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
        return scored.prefix(3).map(\.0)
    }
}
