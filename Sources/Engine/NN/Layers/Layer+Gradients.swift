import CKernels
import ElucidateCore

// Input gradients of the layers: the backward halves of their `callAsFunction`s, used by
// the autodiff graph. Parameters are frozen: no weight gradient is computed here.

extension Conv2d {
    /// dL/dx `[N, C, H, W]` from dL/dy `[N, K, OH, OW]` (dL/dy of the convolution itself:
    /// the activation's backward must already be applied).
    ///
    /// 3×3 stride-1 layers go through Winograd (`winogradInputGradient`); the others per
    /// image through dcol = weightᵀ · dy and col2im (`ek_conv2d_back_input_f32`'s steps), with
    /// the product and the scatter split over Elucidate's threads like the forward's.
    func inputGradient(_ outputGradient: Tensor, inputShape: [Int]) throws(ElucidateError) -> Tensor {
        try Runtime.ensureBLAS()
        if let gradient = winogradInputGradient(outputGradient, inputShape: inputShape) { return gradient }
        if Runtime.packedProducts { return packedInputGradient(outputGradient, inputShape: inputShape) }
        var params = kernelParams(for: inputShape)
        params.activation = EK_ACT_NONE
        let gradient = Tensor(uninitialized: inputShape)
        let scratchCount = Int(ek_conv2d_scratch_size(&params))
        let scratch = scratchCount > 0 ? ScratchBuffer.shared.acquire(count: scratchCount) : nil
        defer { if let scratch { ScratchBuffer.shared.release(scratch) } }
        let (n, k) = (inputShape[0], outChannels)
        let outPlane = outputGradient.shape[2] * outputGradient.shape[3]
        let inImage = inputShape[1] * inputShape[2] * inputShape[3]
        let rows = inChannels * kernelSize.h * kernelSize.w
        for image in 0..<n {
            let dy = outputGradient.storage.pointer + image * k * outPlane
            let dx = gradient.storage.pointer + image * inImage
            // Without scratch (1×1, stride 1, no padding) the column matrix is dx itself.
            let columns = scratch?.pointer ?? dx
            Runtime.gemm(transposingA: true, m: rows, n: outPlane, k: k, a: weight.storage.pointer, lda: rows,
                         b: dy, ldb: outPlane, c: columns, ldc: outPlane)
            guard scratch != nil else { continue }
            checkKernel(Runtime.parallel(params, maxShares: inChannels, elements: rows * outPlane) { share in
                return ek_col2im_f32(&share, columns, dx)
            }, "col2im")
        }
        return gradient
    }
}

extension Conv2d {
    /// dL/dweight `[K, C, R, S]` and dL/dbias `[K]` (nil without a bias) over the batch,
    /// from the input `[N, C, H, W]` and dL/dy (the activation's backward already applied).
    ///
    /// Its products run on OpenBLAS's single thread: OpenBLAS's thread count is process-wide
    /// and is no longer raised here, where it flipped under concurrent inference callers.
    func parameterGradients(input: Tensor, outputGradient: Tensor) throws(ElucidateError) -> (Tensor, Tensor?) {
        try Runtime.ensureBLAS()
        var params = kernelParams(for: input.shape)
        params.activation = EK_ACT_NONE
        let weightGradient = Tensor(zeros: weight.shape)
        let biasGradient = bias.map { Tensor(zeros: $0.shape) }
        let scratchCount = Int(ek_conv2d_scratch_size(&params))
        let scratch = ScratchBuffer.shared.acquire(count: max(scratchCount, 1))
        defer { ScratchBuffer.shared.release(scratch) }
        checkKernel(ek_conv2d_back_weight_f32(&params, input.storage.pointer, outputGradient.storage.pointer,
                                              weightGradient.storage.pointer, biasGradient?.storage.pointer,
                                              scratch.pointer, Int64(scratchCount)), "conv2d weight gradient")
        return (weightGradient, biasGradient)
    }
}

extension Linear {
    /// dL/dweight `[out, in]` and dL/dbias `[out]` (nil without a bias) over the batch.
    func parameterGradients(input: Tensor, outputGradient: Tensor) throws(ElucidateError) -> (Tensor, Tensor?) {
        try Runtime.ensureBLAS()
        let weightGradient = Tensor(zeros: weight.shape)
        let biasGradient = bias.map { Tensor(zeros: $0.shape) }
        checkKernel(ek_linear_back_weight_f32(Int64(input.shape[0]), Int64(inFeatures), Int64(outFeatures),
                                              input.storage.pointer, outputGradient.storage.pointer,
                                              weightGradient.storage.pointer, biasGradient?.storage.pointer),
                    "linear weight gradient")
        return (weightGradient, biasGradient)
    }
}

extension Linear {
    /// dL/dx `[N, in]` from dL/dy `[N, out]`.
    func inputGradient(_ outputGradient: Tensor) throws(ElucidateError) -> Tensor {
        // A small product on OpenBLAS's one thread (configured once at load, never switched).
        try Runtime.ensureBLAS()
        let n = outputGradient.shape[0]
        let gradient = Tensor(uninitialized: [n, inFeatures])
        checkKernel(ek_linear_back_input_f32(Int64(n), Int64(inFeatures), Int64(outFeatures),
                                             outputGradient.storage.pointer, weight.storage.pointer,
                                             gradient.storage.pointer), "linear backward")
        return gradient
    }
}

extension BatchNorm2d {
    /// dL/dx from dL/dy for the inference form (a per-channel scale); the activation's
    /// backward must already be applied.
    func inputGradient(_ outputGradient: Tensor) -> Tensor {
        let gradient = Tensor(uninitialized: outputGradient.shape)
        let shape = outputGradient.shape
        let params = ek_batchnorm_params(n: Int64(shape[0]), c: Int64(channels), hw: Int64(shape.dropFirst(2).reduce(1, *)),
                                         eps: eps, activation: EK_ACT_NONE, ith: 0, nth: 1)
        checkKernel(Runtime.parallel(params, maxShares: shape[0] * channels, elements: outputGradient.count) { share in
            return ek_batchnorm_back_f32(&share, outputGradient.storage.pointer, runningVar.storage.pointer,
                                         weight?.storage.pointer, gradient.storage.pointer)
        }, "batch-norm backward")
        return gradient
    }
}

extension ReLUBackwardRule {
    /// dL/dx of `y = relu(x)` from dL/dy and the forward output (rules other than `.rescale`,
    /// which needs the forward input and the references too).
    func apply(output: Tensor, gradient: Tensor) -> Tensor {
        let result = Tensor(uninitialized: gradient.shape)
        let count = Int64(gradient.count)
        let rule = self
        checkKernel(Runtime.parallel(maxShares: gradient.count, elements: gradient.count) { ith, nth in
            switch rule {
            case .gradient, .rescale:
                ek_relu_back_f32(count, output.storage.pointer, gradient.storage.pointer, result.storage.pointer, ith, nth)
            case .guided:
                ek_relu_back_guided_f32(count, output.storage.pointer, gradient.storage.pointer, result.storage.pointer, ith, nth)
            case .deconvolution:
                // Deconvolution passes relu(dy) back whatever the forward did.
                ek_relu_f32(count, gradient.storage.pointer, result.storage.pointer, ith, nth)
            }
        }, "relu backward")
        return result
    }

    /// DeepLIFT's Rescale multipliers for `y = relu(x)` on a batch `[inputs; references]`:
    /// both halves get Δy/Δx of their pair (the gradient where |Δx| ≤ 1e-10).
    static func rescale(input: Tensor, output: Tensor, gradient: Tensor) -> Tensor {
        precondition(input.shape[0] % 2 == 0, "DeepLIFT needs a batch of inputs followed by as many references")
        let result = Tensor(uninitialized: gradient.shape)
        let half = gradient.count / 2
        let x = input.storage.pointer, y = output.storage.pointer
        let dy = gradient.storage.pointer, dx = result.storage.pointer
        checkKernel(Runtime.parallel(maxShares: half, elements: gradient.count) { ith, nth in
            let first = ek_relu_back_rescale_f32(Int64(half), x, x + half, y, y + half, dy, dx, 1e-10, ith, nth)
            guard first == EK_OK else { return first }
            return ek_relu_back_rescale_f32(Int64(half), x + half, x, y + half, y, dy + half, dx + half, 1e-10, ith, nth)
        }, "relu rescale backward")
        return result
    }
}
