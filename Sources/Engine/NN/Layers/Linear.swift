import CKernels
import ElucidateCore

/// PyTorch's `nn.Linear`: `[N, inFeatures]` → `[N, outFeatures]`, `y = x·Wᵀ + b`.
/// `weight` is `[outFeatures, inFeatures]`, `bias` `[outFeatures]` or nil.
public struct Linear: Sendable {
    /// `[outFeatures, inFeatures]`, as PyTorch stores it.
    public let weight: Tensor
    /// `[outFeatures]`, or nil for none (fastai's head layers).
    public let bias: Tensor?

    /// Features each input row must have: `weight.shape[1]`.
    public var inFeatures: Int { weight.shape[1] }
    /// Features of each output row: `weight.shape[0]`.
    public var outFeatures: Int { weight.shape[0] }

    /// A layer from PyTorch's parameters; `weight` must be rank 2 and `bias` `[outFeatures]` (preconditions).
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        precondition(bias == nil || bias!.shape == [weight.shape[0]], "Linear bias must be [out]")
        self.weight = weight
        self.bias = bias
    }

    /// `input` `[N, inFeatures]` → `[N, outFeatures]`.
    ///
    /// - Throws: `.invalidArgument` for another shape; `.internalFailure` when OpenBLAS cannot be loaded.
    public func callAsFunction(_ input: Tensor) throws(ElucidateError) -> Tensor {
        guard input.rank == 2, input.shape[1] == inFeatures else {
            throw ElucidateError(.invalidArgument, "linear layer expects [N, \(inFeatures)], got \(input.shape)")
        }
        try Runtime.ensureBLAS()
        let n = input.shape[0]
        let output = Tensor(uninitialized: [n, outFeatures])
        checkKernel(ek_linear_f32(Int64(n), Int64(inFeatures), Int64(outFeatures), input.storage.pointer,
                                  weight.storage.pointer, bias?.storage.pointer, output.storage.pointer), "linear")
        return output
    }
}
