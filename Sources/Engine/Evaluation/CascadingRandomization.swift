import ElucidateAttribution
import ElucidateCore
import ElucidateIO
import ElucidateModels
import Foundation

/// Adebayo et al.'s cascading model-parameter randomisation (Sanity Checks for Saliency Maps,
/// 2018) on a torchvision ResNet: the layers are re-initialised from the top — `fc`, then
/// `layer4`, `layer3`, `layer2`, `layer1`, and last `conv1` with `bn1` — each stage keeping the
/// earlier stages' randomisation, and the map recomputed after every stage is compared with
/// the original map (`MapComparison`).
///
/// Re-initialisation is PyTorch's default (`reset_parameters`), drawn from `SeededRandom`:
/// convolution and linear weights kaiming-uniform with a = √5, i.e. uniform in ±1/√fan_in
/// (fan_in = in-channels × kernel area); linear biases uniform in ±1/√fan_in; batch norm
/// weight 1, bias 0 and — as `BatchNorm2d.reset_parameters` also resets them — running mean 0
/// and running variance 1 (keeping the trained statistics would leave the randomised layers
/// normalised by statistics of activations they no longer produce).
public struct CascadingRandomization: Sendable {
    /// One stage: a name and the state-dict key prefixes it re-initialises.
    public struct Stage: Sendable, Equatable {
        /// `fc`, `layer4` … `layer1`, `conv1`.
        public var name: String
        /// The prefixes of its keys (`layer4.`; `conv1.` and `bn1.`).
        public var prefixes: [String]
    }

    /// The stages, top first: `fc`, `layer4`, `layer3`, `layer2`, `layer1`, `conv1`.
    public static let stages: [Stage] = [Stage(name: "fc", prefixes: ["fc."])]
        + (1...4).reversed().map { Stage(name: "layer\($0)", prefixes: ["layer\($0)."]) }
        + [Stage(name: "conv1", prefixes: ["conv1.", "bn1."])]

    /// The seed of every draw.
    public var seed: UInt64

    /// A cascade drawing from `seed`.
    public init(seed: UInt64) { self.seed = seed }

    /// The state dicts after each stage (as many as `stages`), from the torchvision weights
    /// `original`; within a stage, keys are re-initialised in sorted order.
    public func cascade(_ original: StateDict) throws(ElucidateError) -> [StateDict] {
        guard original.contains("fc.weight"), original.contains("conv1.weight") else {
            throw ElucidateError(.unsupported, "the sanity check re-initialises torchvision ResNets (fc, layer1…4, conv1); these weights have another layout")
        }
        var random = SeededRandom(seed: seed)
        var current = original.tensors
        var results: [StateDict] = []
        for stage in Self.stages {
            for key in current.keys.sorted() where stage.prefixes.contains(where: { key.hasPrefix($0) }) {
                current[key] = Self.reinitialized(key, current[key]!, in: current, random: &random)
            }
            results.append(StateDict(current))
        }
        return results
    }

    /// PyTorch's default value for parameter or buffer `key` of shape `tensor.shape`.
    static func reinitialized(_ key: String, _ tensor: Tensor, in tensors: [String: Tensor],
                              random: inout SeededRandom) -> Tensor {
        let module = key.split(separator: ".").dropLast().joined(separator: ".")
        let leaf = key.split(separator: ".").last.map(String.init) ?? key
        // A weight of rank ≥ 2 belongs to a convolution or a linear layer; rank 1 to a batch norm.
        let weight = tensors[module + ".weight"]
        let isNorm = weight.map { $0.rank == 1 } ?? true
        switch (leaf, isNorm) {
        case ("weight", false), ("bias", false):
            let shape = weight!.shape
            let fanIn = shape.dropFirst().reduce(1, *)
            let bound = 1 / Double(fanIn).squareRoot()
            return Tensor(shape: tensor.shape, values: (0..<tensor.count).map { _ in
                Float((2 * random.nextUniform() - 1) * bound)
            })
        case ("weight", true), ("running_var", _):
            return Tensor(shape: tensor.shape, repeating: 1)
        default:  // batch norm bias, running mean (and any counter)
            return Tensor(zeros: tensor.shape)
        }
    }
}
