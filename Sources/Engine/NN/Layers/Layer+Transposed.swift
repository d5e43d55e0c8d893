import ElucidateCore

// Public transposed products of the linear layers, for backward walks outside the autodiff
// graph (layer-wise relevance propagation): the same kernels as the graph's input gradients.

extension Conv2d {
    /// Wᵀ·`outputGradient`: the input gradient `[N, C, H, W]` (`inputShape`) of this
    /// convolution's linear part (bias and activation ignored) for `outputGradient`
    /// `[N, K, OH, OW]`.
    public func transposedProduct(_ outputGradient: Tensor, inputShape: [Int]) throws(ElucidateError) -> Tensor {
        try inputGradient(outputGradient, inputShape: inputShape)
    }
}

extension Linear {
    /// Wᵀ·`outputGradient`: `[N, in]` from `[N, out]` (the bias ignored).
    public func transposedProduct(_ outputGradient: Tensor) throws(ElucidateError) -> Tensor {
        try inputGradient(outputGradient)
    }
}
