import CKernels
import ElucidateCore

/// Batch normalisation in inference form (running statistics), PyTorch's `nn.BatchNorm2d`
/// and `nn.BatchNorm1d`.
///
/// Input `[N, C, H, W]` (or `[N, C]` for the 1-D form); all parameters are `[C]`.
/// `y = (x − runningMean) / √(runningVar + eps) · weight + bias`.
public struct BatchNorm2d: Sendable {
    /// The scale γ, `[C]`; nil means 1 (`affine=False`).
    public let weight: Tensor?
    /// The shift β, `[C]`; nil means 0.
    public let bias: Tensor?
    /// The running mean, `[C]`.
    public let runningMean: Tensor
    /// The running (biased) variance, `[C]`.
    public let runningVar: Tensor
    /// Added to the variance before the square root (PyTorch's default 1e-5).
    public let eps: Float
    /// Applied after the affine transform, in the same pass.
    public var activation: Activation = .identity

    /// C, the channels normalised.
    public var channels: Int { runningMean.count }

    /// A batch norm from PyTorch's parameters; every tensor must be `[C]` (a precondition).
    public init(weight: Tensor?, bias: Tensor?, runningMean: Tensor, runningVar: Tensor, eps: Float = 1e-5) {
        let c = runningMean.count
        precondition(runningMean.rank == 1 && runningVar.shape == [c]
                     && (weight?.shape ?? [c]) == [c] && (bias?.shape ?? [c]) == [c],
                     "batch-norm parameters must all be [C]")
        self.weight = weight
        self.bias = bias
        self.runningMean = runningMean
        self.runningVar = runningVar
        self.eps = eps
    }

    /// Normalises `input` `[N, C, …]` into a new tensor of the same shape, then applies `activation`.
    ///
    /// - Throws: `.invalidArgument` when the input's rank is below 2 or its channels are not `channels`.
    public func callAsFunction(_ input: Tensor) throws(ElucidateError) -> Tensor {
        guard input.rank >= 2, input.shape[1] == channels else {
            throw ElucidateError(.invalidArgument,
                                 "batch norm expects [N, \(channels), …], got \(input.shape)")
        }
        let planes = input.shape[0] * channels
        let output = Tensor(uninitialized: input.shape)
        let params = ek_batchnorm_params(
            n: Int64(input.shape[0]), c: Int64(channels), hw: Int64(input.shape.dropFirst(2).reduce(1, *)),
            eps: eps, activation: activation.kernelValue, ith: 0, nth: 1)
        checkKernel(Runtime.parallel(params, maxShares: planes, elements: input.count) { share in
            return ek_batchnorm_forward_f32(&share, input.storage.pointer, runningMean.storage.pointer,
                                            runningVar.storage.pointer, weight?.storage.pointer,
                                            bias?.storage.pointer, output.storage.pointer)
        }, "batch norm")
        return output
    }
}
