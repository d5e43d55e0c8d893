import CKernels
import ElucidateCore

// The im2col convolutions (the 7×7 stem, stride-2 and 1×1 layers) and their input gradients
// through the packed products (`Runtime.packedProducts`): the weights packed once per layer,
// several images' columns side by side in one product (a stride-2 layer's plane alone has
// only 49–784 columns), and the product stored straight into the output with bias and ReLU.

extension Conv2d {
    /// Floats of im2col columns (or output-gradient columns) per product: 4 MiB, enough for
    /// several images of every stride-2 layer (a ResNet's 7×7 stem has 1.8M per image and
    /// goes one image at a time), small beside the activations a gradient pass keeps.
    private static let maximumColumnFloats = 1 << 20

    /// The weights `[K, C·R·S]` packed as A.
    private var packedWeights: Tensor {
        packedCache.get(packed: true) {
            let (rows, depth) = (outChannels, inChannels * kernelSize.h * kernelSize.w)
            return Self.pack(rows: rows, depth: depth, weight.storage.pointer, rowStride: depth, depthStride: 1)
        }
    }

    /// The transposed weights `[C·R·S, K]` packed as A (the input gradient's product).
    private var packedTransposedWeights: Tensor {
        packedBackwardCache.get(packed: true) {
            let (rows, depth) = (inChannels * kernelSize.h * kernelSize.w, outChannels)
            return Self.pack(rows: rows, depth: depth, weight.storage.pointer, rowStride: 1, depthStride: rows)
        }
    }

    private static func pack(rows: Int, depth: Int, _ a: UnsafePointer<Float>, rowStride: Int, depthStride: Int) -> Tensor {
        let packed = Tensor(uninitialized: [Int(ek_gemm_packed_a_floats(Int64(rows), Int64(depth)))])
        checkKernel(Runtime.parallel(maxShares: (rows + 5) / 6, elements: rows * depth) { ith, nth in
            ek_gemm_pack_a_f32(Int64(rows), Int64(depth), a, Int64(rowStride), Int64(depthStride),
                               packed.storage.pointer, ith, nth)
        }, "weight packing")
        return packed
    }

    /// A direct 1×1 convolution: stride 1, no padding, so the input is its own column matrix.
    private var isDirect: Bool {
        kernelSize == (1, 1) && stride == (1, 1) && padding == (0, 0)
    }

    /// The images per product (as many as keep the columns under `maximumColumnFloats`), the
    /// im2col columns of that many (`[images, C·R·S, outPlane]`; nil for a direct layer, whose
    /// input or output is its own column matrix) and the packed B of `packedRows` rows.
    private func scratch(images: Int, outPlane: Int, packedRows: Int)
        -> (chunk: Int, columns: ScratchBuffer.Buffer?, packed: ScratchBuffer.Buffer) {
        let depth = inChannels * kernelSize.h * kernelSize.w
        let chunk = max(1, min(images, Self.maximumColumnFloats / max(1, max(depth, packedRows) * outPlane)))
        let columns = isDirect ? nil : ScratchBuffer.shared.acquire(count: chunk * depth * outPlane)
        let packed = ScratchBuffer.shared.acquire(count: Int(ek_gemm_packed_b_floats(Int64(packedRows), Int64(chunk * outPlane))))
        return (chunk, columns, packed)
    }

    private func release(_ columns: ScratchBuffer.Buffer?, _ packed: ScratchBuffer.Buffer) {
        if let columns { ScratchBuffer.shared.release(columns) }
        ScratchBuffer.shared.release(packed)
    }

    /// The forward through im2col and the packed products; `outShape` from `outputShape(for:)`.
    func packedForward(_ input: Tensor, outShape: [Int]) -> Tensor {
        let params = kernelParams(for: [1] + Array(input.shape.dropFirst()))
        let (n, k) = (input.shape[0], outChannels)
        let outPlane = outShape[2] * outShape[3]
        let inImage = input.shape[1] * input.shape[2] * input.shape[3]
        let depth = inChannels * kernelSize.h * kernelSize.w
        let (chunk, columns, packed) = scratch(images: n, outPlane: outPlane, packedRows: depth)
        defer { release(columns, packed) }
        let output = Tensor(uninitialized: outShape)
        let a = packedWeights
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            let x = input.storage.pointer + first * inImage
            let source: UnsafePointer<Float>
            let imageStride: Int
            if let columns {
                for image in 0..<count {
                    let target = columns.pointer + image * depth * outPlane
                    checkKernel(Runtime.parallel(params, maxShares: depth, elements: depth * outPlane) { share in
                        return ek_im2col_f32(&share, x + image * inImage, target)
                    }, "im2col")
                }
                (source, imageStride) = (UnsafePointer(columns.pointer), depth * outPlane)
            } else {
                (source, imageStride) = (UnsafePointer(x), inImage)
            }
            Runtime.packB(k: depth, n: count * outPlane, b: source, plane: outPlane, imageStride: imageStride,
                          into: packed.pointer)
            Runtime.packedGEMM(m: k, n: count * outPlane, k: depth, a: a.storage.pointer, b: packed.pointer,
                               c: output.storage.pointer + first * k * outPlane, plane: outPlane, imageStride: k * outPlane,
                               bias: bias?.storage.pointer, activation: activation.kernelValue)
            first += count
        }
        return output
    }

    /// dL/dx through the packed products: dcol = weightᵀ · dy for several images in one product,
    /// then col2im per image (a direct 1×1 layer's product is dL/dx itself).
    func packedInputGradient(_ outputGradient: Tensor, inputShape: [Int]) -> Tensor {
        var params = kernelParams(for: [1] + Array(inputShape.dropFirst()))
        params.activation = EK_ACT_NONE
        let (n, k) = (inputShape[0], outChannels)
        let outPlane = outputGradient.shape[2] * outputGradient.shape[3]
        let inImage = inputShape[1] * inputShape[2] * inputShape[3]
        let depth = inChannels * kernelSize.h * kernelSize.w
        let (chunk, columns, packed) = scratch(images: n, outPlane: outPlane, packedRows: k)
        defer { release(columns, packed) }
        let gradient = Tensor(uninitialized: inputShape)
        let a = packedTransposedWeights
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            Runtime.packB(k: k, n: count * outPlane, b: outputGradient.storage.pointer + first * k * outPlane,
                          plane: outPlane, imageStride: k * outPlane, into: packed.pointer)
            let dx = gradient.storage.pointer + first * inImage
            guard let columns else {
                Runtime.packedGEMM(m: depth, n: count * outPlane, k: k, a: a.storage.pointer, b: packed.pointer,
                                   c: dx, plane: outPlane, imageStride: inImage)
                first += count
                continue
            }
            Runtime.packedGEMM(m: depth, n: count * outPlane, k: k, a: a.storage.pointer, b: packed.pointer,
                               c: columns.pointer, plane: outPlane, imageStride: depth * outPlane)
            for image in 0..<count {
                let source = columns.pointer + image * depth * outPlane
                checkKernel(Runtime.parallel(params, maxShares: inChannels, elements: depth * outPlane) { share in
                    return ek_col2im_f32(&share, source, dx + image * inImage)
                }, "col2im")
            }
            first += count
        }
        return gradient
    }
}
