import CKernels
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
        winogradCache.get {
            let u = Tensor(uninitialized: [36, outChannels, inChannels])
            let params = kernelParams(for: [1, inChannels, 8, 8])
            checkKernel(Runtime.parallel(params, maxShares: outChannels, elements: u.count) { share in
                return ek_winograd_weight_f32(&share, weight.storage.pointer, u.storage.pointer)
            }, "winograd weight transform")
            return u
        }
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
    /// apply or would not pay. Images are processed in chunks that bound the scratch memory.
    ///
    /// - Precondition: `outShape` from `outputShape(for:)`; BLAS loaded with one OpenBLAS thread.
    func winogradForward(_ input: Tensor, outShape: [Int]) -> Tensor? {
        guard Runtime.winogradEnabled, let tiles = winogradTiles(for: input.shape) else { return nil }
        let (n, c, k) = (input.shape[0], inChannels, outChannels)
        let u = winogradWeights
        let maximumFloats = 1 << 24
        let chunk = max(1, min(n, maximumFloats / (36 * max(c, k) * tiles.perImage)))
        let chunkTiles = chunk * tiles.perImage
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
            let t = count * tiles.perImage
            let params = kernelParams(for: [count] + Array(input.shape.dropFirst()))
            let x = input.storage.pointer + first * inImage
            checkKernel(Runtime.parallel(params, maxShares: c, elements: 36 * c * t) { share in
                return ek_winograd_input_f32(&share, x, v.pointer)
            }, "winograd input transform")
            Runtime.gemms(count: 36) { element in
                ek_gemm_f32(0, 0, Int64(k), Int64(t), Int64(c), 1, u.storage.pointer + element * k * c, Int64(c),
                            v.pointer + element * c * t, Int64(t), 0, m.pointer + element * k * t, Int64(t))
            }
            let y = output.storage.pointer + first * outImage
            let bias = self.bias?.storage.pointer
            checkKernel(Runtime.parallel(params, maxShares: k, elements: 36 * k * t) { share in
                return ek_winograd_output_f32(&share, m.pointer, bias, y)
            }, "winograd output transform")
            first += count
        }
        return output
    }
}
