import CKernels
import ElucidateCore

extension Conv2d {
    /// The same convolution with one GEMM for several images: their im2col columns side by
    /// side ([rows, n·P]), so small planes still make a wide product. Large planes go
    /// through the ordinary per-image path.
    package func batched(_ input: Tensor) throws(ElucidateError) -> Tensor {
        let outShape = try outputShape(for: input.shape)
        let (n, k) = (outShape[0], outShape[1])
        let outPlane = outShape[2] * outShape[3]
        let rows = inChannels * kernelSize.h * kernelSize.w
        let maximumColumns = 1 << 22
        try Runtime.ensureBLAS()
        if let output = winogradForward(input, outShape: outShape) { return output }
        if Runtime.packedProducts { return packedForward(input, outShape: outShape) }
        if n == 1 || outPlane >= 1024 || rows * outPlane * 2 > maximumColumns { return try self(input) }
        let chunk = max(1, min(n, maximumColumns / (rows * outPlane)))
        var params = kernelParams(for: [1] + Array(input.shape.dropFirst()))
        let scratchCount = Int(ek_conv2d_scratch_size(&params))
        let scratch = scratchCount > 0 ? ScratchBuffer.shared.acquire(count: scratchCount) : nil
        defer { if let scratch { ScratchBuffer.shared.release(scratch) } }
        let columns = ScratchBuffer.shared.acquire(count: rows * outPlane * chunk)
        defer { ScratchBuffer.shared.release(columns) }
        let product = ScratchBuffer.shared.acquire(count: k * outPlane * chunk)
        defer { ScratchBuffer.shared.release(product) }
        let output = Tensor(uninitialized: outShape)
        let inImage = input.shape[1] * input.shape[2] * input.shape[3]
        let activation = self.activation
        let b = bias?.storage.pointer
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            let width = count * outPlane
            for image in 0..<count {
                let xImage = input.storage.pointer + (first + image) * inImage
                let source = columnMatrix(of: xImage, params: params, scratch: scratch)
                for row in 0..<rows {
                    (columns.pointer + row * width + image * outPlane).update(from: source + row * outPlane, count: outPlane)
                }
            }
            Runtime.gemm(m: k, n: width, k: rows, a: weight.storage.pointer, lda: rows, b: columns.pointer, ldb: width,
                         c: product.pointer, ldc: width)
            for image in 0..<count {
                let yImage = output.storage.pointer + (first + image) * k * outPlane
                for channel in 0..<k {
                    (yImage + channel * outPlane).update(from: product.pointer + channel * width + image * outPlane, count: outPlane)
                }
                if b != nil || activation != .identity {
                    checkKernel(Runtime.parallel(maxShares: k, elements: k * outPlane) { ith, nth in
                        ek_bias_act_f32(Int64(k), Int64(outPlane), b, activation.kernelValue, yImage, ith, nth)
                    }, "conv2d epilogue")
                }
            }
            first += count
        }
        return output
    }
}
