/// ElucidateNN: the network building blocks. Layers named like PyTorch's modules (Conv2d with
/// its Winograd and batched paths, BatchNorm2d, Linear, pooling) with their backward
/// passes, and the reverse-mode autodiff `Graph` that records them. Layers and autodiff
/// refer to each other (backward rules), so they are one module. It may depend on
/// ElucidateCore and CKernels.

import ElucidateCore

/// A value recorded in a `Graph`: a tensor plus the node that produced it.
public struct Variable: Sendable {
    /// Index of the producing node in its graph.
    public let id: Int
    /// The forward value the node produced.
    public let value: Tensor
    /// False for constants: backward never computes a gradient for them.
    public let requiresGradient: Bool

    /// The shape of `value`.
    public var shape: [Int] { value.shape }
}

/// How the backward pass treats each ReLU: attribution methods differ only here.
public enum ReLUBackwardRule: Sendable, Equatable {
    /// The true gradient: dy where the ReLU was active.
    case gradient
    /// Guided backpropagation: only positive dy, and only where the ReLU was active.
    case guided
    /// Deconvolution: the ReLU applied to dy, whatever the forward did.
    case deconvolution
    /// DeepLIFT's Rescale rule. The batch is `[inputs; references]` (first half, second half);
    /// multipliers are Δy/Δx between each input and its reference.
    case rescale
}

/// A tape for reverse-mode automatic differentiation of a forward pass.
///
/// Record a forward pass with the `Graph+…` operations, then call `gradients(of:seed:for:)`.
/// Each operation stores only what its backward needs, and backward releases it as soon as
/// the node has been processed, so peak memory is one forward's activations.
///
/// A graph is used by one thread at a time; kernels inside still run in parallel.
public final class Graph {
    /// Computes the gradients of a node's inputs from the gradient of its output; nil
    /// entries for inputs that need none.
    typealias Backward = (_ outputGradient: Tensor) throws(ElucidateError) -> [Tensor?]

    struct Node {
        var inputs: [Int]
        var backward: Backward?
    }

    private(set) var nodes: [Node] = []
    /// Gradients of named parameters (see `conv2d(_:_:parameterName:)`), filled by backward.
    /// Parameters are frozen unless named: unnamed layers cost no weight-gradient work.
    public private(set) var parameterGradients: [String: Tensor] = [:]
    /// The backward rule for ReLUs (fused or not).
    public let reluRule: ReLUBackwardRule

    /// An empty tape whose ReLUs (fused or not) take `reluRule` backward.
    public init(reluRule: ReLUBackwardRule = .gradient) {
        self.reluRule = reluRule
    }

    /// Whether activations must be kept separate from the convolutions before them
    /// (DeepLIFT needs each ReLU's input, not just its output).
    var needsPreActivations: Bool { reluRule == .rescale }

    /// A leaf: an input image batch (gradient wanted) or a constant.
    public func input(_ value: Tensor, requiresGradient: Bool = true) -> Variable {
        nodes.append(Node(inputs: [], backward: nil))
        return Variable(id: nodes.count - 1, value: value, requiresGradient: requiresGradient)
    }

    /// Records an operation's output. `backward` is kept only when some input needs a
    /// gradient, or `hasParameters` (the op fills `parameterGradients`).
    func record(_ value: Tensor, inputs: [Variable], hasParameters: Bool = false,
                backward: @escaping Backward) -> Variable {
        let needed = hasParameters || inputs.contains { $0.requiresGradient }
        nodes.append(Node(inputs: inputs.map(\.id), backward: needed ? backward : nil))
        return Variable(id: nodes.count - 1, value: value, requiresGradient: needed)
    }

    /// Adds `gradient` to the named parameter's accumulated gradient.
    func accumulate(parameter name: String, _ gradient: Tensor) {
        if let existing = parameterGradients[name] {
            parameterGradients[name] = existing.adding(gradient)
        } else {
            parameterGradients[name] = gradient
        }
    }

    /// Backpropagates `seed` (the gradient of some scalar with respect to `output`, same
    /// shape) and returns the gradient with respect to each variable in `targets` (zeros
    /// for a variable the output does not depend on).
    ///
    /// The graph is consumed: activations are released as backward passes them, and a
    /// second call throws.
    public func gradients(of output: Variable, seed: Tensor, for targets: [Variable]) throws(ElucidateError) -> [Tensor] {
        precondition(seed.shape == output.shape, "seed \(seed.shape) must have the output's shape \(output.shape)")
        precondition(output.id < nodes.count, "variable from another graph")
        let wanted = Set(targets.map(\.id))
        var pending: [Int: Tensor] = [output.id: seed]
        var kept: [Int: Tensor] = [:]
        for id in stride(from: output.id, through: 0, by: -1) {
            guard let gradient = pending.removeValue(forKey: id) else { continue }
            if wanted.contains(id) { kept[id] = gradient }
            let node = nodes[id]
            guard let backward = node.backward else { continue }
            nodes[id].backward = nil  // frees the activations it captured
            let inputGradients = try backward(gradient)
            precondition(inputGradients.count == node.inputs.count, "backward returned \(inputGradients.count) gradients for \(node.inputs.count) inputs")
            for (input, inputGradient) in zip(node.inputs, inputGradients) {
                guard let inputGradient else { continue }
                if let existing = pending[input] {
                    pending[input] = existing.adding(inputGradient)
                } else {
                    pending[input] = inputGradient
                }
            }
        }
        for id in nodes.indices { nodes[id].backward = nil }
        return targets.map { kept[$0.id] ?? Tensor(zeros: $0.shape) }
    }
}
