/// ElucidateIO: reading and writing the files the engine deals with. safetensors, `.npy`,
/// PyTorch `.pth` checkpoints (with their pickle and ZIP layers) into a `StateDict`, atomic
/// file writes, bounded file input, text made safe for a terminal. It may depend on
/// ElucidateCore only (no images, layers or models).

import ElucidateCore

/// A PyTorch state dict: parameter and buffer tensors by module path
/// (`layer1.0.conv1.weight`), as `torch.save(model.state_dict())` or safetensors hold them.
///
/// Only floating-point tensors are kept; integer buffers such as batch norm's
/// `num_batches_tracked` mean nothing for inference and are dropped by the loaders.
public struct StateDict: Sendable {
    /// The tensors by key (float32, in the shapes PyTorch stores).
    public var tensors: [String: Tensor]

    /// A state dict holding `tensors` as given.
    public init(_ tensors: [String: Tensor]) {
        self.tensors = tensors
    }

    /// The keys, sorted (for messages and listings).
    public var keys: [String] { tensors.keys.sorted() }

    /// The tensor at `key`, or nil.
    public subscript(key: String) -> Tensor? { tensors[key] }

    /// Whether the state dict holds `key`.
    public func contains(_ key: String) -> Bool { tensors[key] != nil }

    /// The tensor at `key` with the given rank, or a clear error.
    package func tensor(_ key: String, rank: Int) throws(ElucidateError) -> Tensor {
        guard let tensor = tensors[key] else {
            throw ElucidateError(.unknownArchitecture, "missing key '\(key)'")
        }
        guard tensor.rank == rank else {
            throw ElucidateError(.invalidFormat, "'\(key)' has shape \(tensor.shape), expected \(rank) dimensions")
        }
        return tensor
    }

    /// Removes a prefix shared by every key (`module.` from DataParallel, `model.`).
    public func strippingPrefix(_ prefix: String) -> StateDict {
        guard !tensors.isEmpty, tensors.keys.allSatisfy({ $0.hasPrefix(prefix) }) else { return self }
        return StateDict(Dictionary(uniqueKeysWithValues: tensors.map { (String($0.key.dropFirst(prefix.count)), $0.value) }))
    }
}
