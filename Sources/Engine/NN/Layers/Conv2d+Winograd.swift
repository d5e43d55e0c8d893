import CKernels
import ElucidateCore
import Foundation

/// A convolution's Winograd-transformed weights `[36, K, C]`, computed on first use and
/// shared by every copy of the layer (4× the weight's memory, so only layers that run
/// through Winograd pay for it).
final class WinogradWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var transformed: Tensor?

    func get(_ make: () -> Tensor) -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        if let transformed { return transformed }
        let made = make()
        transformed = made
        return made
    }
}

extension Conv2d {
    /// Winograd F(4×4, 3×3) needs a 3×3, stride-1, undilated kernel; with very few channels
    /// the 36 small products cost more than the multiply-adds they save.
    var usesWinograd: Bool {
        var params = kernelParams(for: [1, inChannels, 8, 8])
        return ek_winograd_applies(&params) != 0 && inChannels >= 8 && outChannels >= 8
    }

    /// Below this many output tiles per call, 36 thin products lose to one im2col product.
    static let minimumWinogradTiles = 16

    /// The transformed weights `[36, K, C]`.
    var winogradWeights: Tensor {
        winogradCache.get { Self.winogradTransform(weight, params: kernelParams(for: [1, inChannels, 8, 8])) }
    }

    /// `weight` `[K, C, 3, 3]` through the Winograd weight transform: `[36, K, C]` (K and C as
    /// in `params`), split over the output channels.
    static func winogradTransform(_ weight: Tensor, params: ek_conv2d_params) -> Tensor {
        let u = Tensor(uninitialized: [36, Int(params.k), Int(params.c)])
        checkKernel(Runtime.parallel(params, maxShares: Int(params.k), elements: u.count) { share in
            return ek_winograd_weight_f32(&share, weight.storage.pointer, u.storage.pointer)
        }, "winograd weight transform")
        return u
    }

    /// Tiles of a `[N, C, H, W]` input, or nil when Winograd does not apply or would not pay.
    func winogradTiles(for input: [Int]) -> (perImage: Int, total: Int)? {
        guard usesWinograd else { return nil }
        var params = kernelParams(for: input)
        var tilesH: Int64 = 0, tilesW: Int64 = 0
        guard ek_winograd_tiles(&params, &tilesH, &tilesW) == EK_OK else { return nil }
        let perImage = Int(tilesH * tilesW)
        let total = perImage * input[0]
        return total >= Self.minimumWinogradTiles ? (perImage, total) : nil
    }

    /// This convolution through Winograd F(4×4, 3×3), with bias and activation fused into
    /// the output transform, or nil when Winograd is off (`Runtime.winogradEnabled`), does not
    /// apply or would not pay.
    ///
    /// - Precondition: `outShape` from `outputShape(for:)`; BLAS loaded with one OpenBLAS thread.
    func winogradForward(_ input: Tensor, outShape: [Int]) -> Tensor? {
        guard Runtime.winogradEnabled, let tiles = winogradTiles(for: input.shape) else { return nil }
        return Self.winograd(input, outShape: outShape, tilesPerImage: tiles.perImage, u: winogradWeights,
                             bias: bias, params: { kernelParams(for: $0) })
    }

    /// `[N, C, H, W]` → `[N, K, OH, OW]` through Winograd with the transformed weights
    /// `u` `[36, K, C]`, where `params(shape)` describes the convolution of an input of that
    /// shape (its activation is fused into the output transform). Images are processed in
    /// chunks that bound the scratch memory; the 36 products of a chunk run on Elucidate's
    /// threads.
    ///
    /// - Precondition: BLAS loaded with one OpenBLAS thread.
    private static func winograd(_ input: Tensor, outShape: [Int], tilesPerImage: Int, u: Tensor, bias: Tensor?,
                                 params makeParams: ([Int]) -> ek_conv2d_params) -> Tensor {
        let (n, c, k) = (input.shape[0], input.shape[1], outShape[1])
        let maximumFloats = 1 << 24
        let chunk = max(1, min(n, maximumFloats / (36 * max(c, k) * tilesPerImage)))
        let chunkTiles = chunk * tilesPerImage
        let v = ScratchBuffer.shared.acquire(count: 36 * c * chunkTiles)
        defer { ScratchBuffer.shared.release(v) }
        let m = ScratchBuffer.shared.acquire(count: 36 * k * chunkTiles)
        defer { ScratchBuffer.shared.release(m) }
        let output = Tensor(uninitialized: outShape)
        let inImage = c * input.shape[2] * input.shape[3]
        let outImage = k * outShape[2] * outShape[3]
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            let t = count * tilesPerImage
            let params = makeParams([count] + Array(input.shape.dropFirst()))
            let x = input.storage.pointer + first * inImage
            checkKernel(Runtime.parallel(params, maxShares: c, elements: 36 * c * t) { share in
                return ek_winograd_input_f32(&share, x, v.pointer)
            }, "winograd input transform")
            Runtime.gemms(count: 36) { element in
                ek_gemm_f32(0, 0, Int64(k), Int64(t), Int64(c), 1, u.storage.pointer + element * k * c, Int64(c),
                            v.pointer + element * c * t, Int64(t), 0, m.pointer + element * k * t, Int64(t))
            }
            let y = output.storage.pointer + first * outImage
            let biasPointer = bias?.storage.pointer
            checkKernel(Runtime.parallel(params, maxShares: k, elements: 36 * k * t) { share in
                return ek_winograd_output_f32(&share, m.pointer, biasPointer, y)
            }, "winograd output transform")
            first += count
        }
        return output
    }
}

// MARK: - Input gradient

extension Conv2d {
    /// The params of the convolution whose forward is this one's input gradient, for an
    /// output gradient of `shape` `[N, K, OH, OW]`: K → C channels, the kernel flipped, padding
    /// R − 1 − P, so the output is `[N, C, H, W]` again (stride 1, undilated). No activation.
    private func transposedParams(for shape: [Int]) -> ek_conv2d_params {
        ek_conv2d_params(
            n: Int64(shape[0]), c: Int64(outChannels), h: Int64(shape[2]), w: Int64(shape[3]),
            k: Int64(inChannels), r: Int64(kernelSize.h), s: Int64(kernelSize.w), stride_h: 1, stride_w: 1,
            pad_h: Int64(kernelSize.h - 1 - padding.h), pad_w: Int64(kernelSize.w - 1 - padding.w),
            dilation_h: 1, dilation_w: 1, activation: EK_ACT_NONE, ith: 0, nth: 1)
    }

    /// The transposed, flipped weights `[C, K, 3, 3]` through the Winograd weight transform:
    /// `[36, C, K]`, made on first use (4× the weight's memory, for layers whose gradient is
    /// taken through Winograd).
    private var winogradTransposedWeights: Tensor {
        winogradBackwardCache.get {
            let (k, c) = (outChannels, inChannels)
            let flipped = weight.withUnsafeBufferPointer { w in
                Tensor(uninitialized: [c, k, 3, 3]) { f in
                    for ko in 0..<k {
                        for ci in 0..<c {
                            let source = (ko * c + ci) * 9, destination = (ci * k + ko) * 9
                            for tap in 0..<9 { f[destination + tap] = w[source + 8 - tap] }
                        }
                    }
                }
            }
            return Self.winogradTransform(flipped, params: transposedParams(for: [1, k, 8, 8]))
        }
    }

    /// dL/dx `[N, C, H, W]` from dL/dy `[N, K, OH, OW]` through Winograd: the input gradient of
    /// a 3×3 stride-1 convolution is itself a 3×3 stride-1 convolution of dL/dy with the
    /// weights transposed and flipped (padding 2 − P), so it gets the forward's 2.25–4× saving
    /// in multiply-adds. Nil when Winograd is off, does not apply or would not pay.
    ///
    /// - Precondition: BLAS loaded with one OpenBLAS thread.
    func winogradInputGradient(_ outputGradient: Tensor, inputShape: [Int]) -> Tensor? {
        guard Runtime.winogradEnabled, usesWinograd, padding.h <= 2, padding.w <= 2 else { return nil }
        var params = transposedParams(for: outputGradient.shape)
        var tilesH: Int64 = 0, tilesW: Int64 = 0
        guard ek_winograd_tiles(&params, &tilesH, &tilesW) == EK_OK else { return nil }
        let perImage = Int(tilesH * tilesW)
        guard perImage * inputShape[0] >= Self.minimumWinogradTiles else { return nil }
        return Self.winograd(outputGradient, outShape: inputShape, tilesPerImage: perImage,
                             u: winogradTransposedWeights, bias: nil, params: transposedParams(for:))
    }
}
