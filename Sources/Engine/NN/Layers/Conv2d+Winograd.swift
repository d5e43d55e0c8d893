import CKernels
import ElucidateCore
import Foundation

/// Weights a convolution derives from its own and keeps (Winograd-transformed, packed for the
/// packed products): made on first use and shared by every copy of the layer. Winograd forms
/// are kept per tile size (a network's 3×3 layers each see one plane size, so one tile, unless
/// called at several input sizes); of each, only the form the current instruction-set level
/// uses (each is up to 4–7× the weight's memory); a level change (tests switch levels) makes
/// the other form once more.
final class DerivedWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var made: [Int32: (packed: Bool, tensor: Tensor)] = [:]

    /// The form `packed` for Winograd tile `tile` (0 for forms that have no tile).
    func get(packed: Bool, tile: Int32 = 0, _ make: () -> Tensor) -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        if let kept = made[tile], kept.packed == packed { return kept.tensor }
        let tensor = make()
        made[tile] = (packed, tensor)
        return tensor
    }
}

extension Conv2d {
    /// Winograd F(m×m, 3×3) needs a 3×3, stride-1, undilated kernel; with very few channels
    /// the (m + 2)² small products cost more than the multiply-adds they save.
    var usesWinograd: Bool {
        var params = kernelParams(for: [1, inChannels, 8, 8])
        return ek_winograd_applies(&params) != 0 && inChannels >= 8 && outChannels >= 8
    }

    /// Below this many F(4×4) tiles per call (256 outputs), Winograd's thin products lose to one
    /// im2col product. Counted in F(4×4) tiles whatever tile the call then uses, so whether a
    /// convolution takes Winograd does not depend on the tile choice.
    static let minimumWinogradTiles = 16

    /// The transformed weights for tile `tile` (`ek_winograd_tile_size`): `[E, K, C]`, or with
    /// `packed` the E = (tile + 2)² matrices each as packed A (`[E, ek_gemm_packed_a_floats(K, C)]`).
    func winogradWeights(packed: Bool, tile: Int32) -> Tensor {
        winogradCache.get(packed: packed, tile: tile) {
            var params = kernelParams(for: [1, inChannels, 8, 8])
            params.winograd_tile = tile
            return Self.winogradTransform(weight, params: params, packed: packed)
        }
    }

    /// `weight` `[K, C, 3, 3]` through the Winograd weight transform of the params' tile size:
    /// `[E, K, C]` (K and C as in `params`, E = `ek_winograd_elements`), or with `packed` each of
    /// the E as the packed A of `ek_gemm_packed_f32` (`[E, ek_gemm_packed_a_floats(K, C)]`),
    /// split over the output channels.
    ///
    /// With `transposed`, `params` describes the input gradient's convolution and `weight` is the
    /// forward's own `[C, K, 3, 3]`, each kernel transposed and flipped as it is read.
    static func winogradTransform(_ weight: Tensor, params: ek_conv2d_params, packed: Bool,
                                  transposed: Bool = false) -> Tensor {
        var query = params
        let elements = Int(ek_winograd_elements(&query))
        let stride = packed ? Int(ek_gemm_packed_a_floats(params.k, params.c)) : Int(params.k * params.c)
        let u = Tensor(uninitialized: [elements, stride])
        checkKernel(Runtime.parallel(params, maxShares: Int(params.k), elements: u.count) { share in
            if transposed {
                return ek_winograd_weight_transposed_f32(&share, weight.storage.pointer, u.storage.pointer, packed ? 1 : 0)
            }
            return packed ? ek_winograd_weight_packed_f32(&share, weight.storage.pointer, u.storage.pointer)
                : ek_winograd_weight_f32(&share, weight.storage.pointer, u.storage.pointer)
        }, "winograd weight transform")
        return packed ? u : u.reshaped([elements, Int(params.k), Int(params.c)])
    }

    /// The Winograd geometry of the convolution `params` describes: its tile size (fixed in the
    /// returned params, so every call of one convolution uses the tile its weights were made
    /// for) and tiles per image, or nil when Winograd does not apply or would not pay (fewer
    /// than `minimumWinogradTiles` F(4×4) tiles).
    static func winogradPlan(_ params: ek_conv2d_params) -> (params: ek_conv2d_params, tilesPerImage: Int)? {
        var small = params
        small.winograd_tile = 4
        var tilesH: Int64 = 0, tilesW: Int64 = 0
        guard ek_winograd_tiles(&small, &tilesH, &tilesW) == EK_OK,
              Int(tilesH * tilesW * params.n) >= minimumWinogradTiles else { return nil }
        var params = params
        params.winograd_tile = ek_winograd_tile_size(&params)
        guard params.winograd_tile != 0, ek_winograd_tiles(&params, &tilesH, &tilesW) == EK_OK else { return nil }
        return (params, Int(tilesH * tilesW))
    }

    /// Tiles of a `[N, C, H, W]` input, or nil when Winograd does not apply or would not pay.
    func winogradTiles(for input: [Int]) -> (perImage: Int, total: Int)? {
        guard usesWinograd, let plan = Self.winogradPlan(kernelParams(for: input)) else { return nil }
        return (plan.tilesPerImage, plan.tilesPerImage * input[0])
    }

    /// This convolution through Winograd F(m×m, 3×3), with bias and activation fused into
    /// the output transform, or nil when Winograd is off (`Runtime.winogradEnabled`), does not
    /// apply or would not pay.
    ///
    /// - Precondition: `outShape` from `outputShape(for:)`; BLAS loaded with one OpenBLAS thread.
    func winogradForward(_ input: Tensor, outShape: [Int]) -> Tensor? {
        guard Runtime.winogradEnabled, usesWinograd, let plan = Self.winogradPlan(kernelParams(for: input.shape)) else {
            return nil
        }
        let packed = Runtime.packedProducts, tile = plan.params.winograd_tile
        return Self.winograd(input, outShape: outShape, tile: tile, tilesPerImage: plan.tilesPerImage,
                             u: winogradWeights(packed: packed, tile: tile), packed: packed, bias: bias,
                             params: kernelParams(for:))
    }

    /// `[N, C, H, W]` → `[N, K, OH, OW]` through Winograd F(`tile`×`tile`) with the weights
    /// transformed for that tile, `u` (`winogradWeights(packed:tile:)`), where `params(shape)`
    /// describes the convolution of an input of that shape (its activation is fused into the
    /// output transform; every call gets `tile` pinned, whatever its own choice). Images are
    /// processed in chunks that bound the scratch memory; the (m + 2)² products of a chunk run on
    /// Elucidate's threads, through `ek_gemm_packed_f32` on tiles the input transform writes
    /// already packed when `packed`, else through OpenBLAS.
    ///
    /// - Precondition: BLAS loaded with one OpenBLAS thread.
    private static func winograd(_ input: Tensor, outShape: [Int], tile: Int32, tilesPerImage: Int, u: Tensor,
                                 packed: Bool, bias: Tensor?,
                                 params convolution: ([Int]) -> ek_conv2d_params) -> Tensor {
        func makeParams(_ shape: [Int]) -> ek_conv2d_params {
            var params = convolution(shape)
            params.winograd_tile = tile
            return params
        }
        let (n, c, k) = (input.shape[0], input.shape[1], outShape[1])
        let elements = Int((tile + 2) * (tile + 2))
        if packed, let fused = fusedWinograd(input, outShape: outShape, tilesPerImage: tilesPerImage, elements: elements,
                                             u: u, bias: bias, params: makeParams(input.shape)) {
            return fused
        }
        let maximumFloats = 1 << 24
        let chunk = max(1, min(n, maximumFloats / (elements * max(c, k) * tilesPerImage)))
        let chunkTiles = chunk * tilesPerImage
        let v = ScratchBuffer.shared.acquire(count: elements * Int(ek_gemm_packed_b_floats(Int64(c), Int64(chunkTiles))))
        defer { ScratchBuffer.shared.release(v) }
        let m = ScratchBuffer.shared.acquire(count: elements * k * chunkTiles)
        defer { ScratchBuffer.shared.release(m) }
        let output = Tensor(uninitialized: outShape)
        let inImage = c * input.shape[2] * input.shape[3]
        let outImage = k * outShape[2] * outShape[3]
        let uStride = packed ? Int(ek_gemm_packed_a_floats(Int64(k), Int64(c))) : k * c
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            let t = count * tilesPerImage
            let params = makeParams([count] + Array(input.shape.dropFirst()))
            let x = input.storage.pointer + first * inImage
            var groupsQuery = params
            let shares = packed ? Int(ek_winograd_input_groups(&groupsQuery)) : c
            checkKernel(Runtime.parallel(params, maxShares: shares, elements: elements * c * t) { share in
                return packed ? ek_winograd_input_packed_f32(&share, x, v.pointer) : ek_winograd_input_f32(&share, x, v.pointer)
            }, "winograd input transform")
            let vStride = packed ? Int(ek_gemm_packed_b_floats(Int64(c), Int64(t))) : c * t
            Runtime.gemms(count: elements) { element in
                let (a, b, product) = (u.storage.pointer + element * uStride, v.pointer + element * vStride,
                                       m.pointer + element * k * t)
                guard packed else {
                    return ek_gemm_f32(0, 0, Int64(k), Int64(t), Int64(c), 1, a, Int64(c), b, Int64(t), 0, product, Int64(t))
                }
                var gemm = ek_gemm_packed_params(m: Int64(k), n: Int64(t), k: Int64(c), a: a, b: b, c: product,
                                                 plane: Int64(t), image_stride: 0, bias: nil, activation: EK_ACT_NONE,
                                                 panel_begin: 0, panel_end: Int64((t + 15) / 16))
                return ek_gemm_packed_f32(&gemm)
            }
            let y = output.storage.pointer + first * outImage
            let biasPointer = bias?.storage.pointer
            checkKernel(Runtime.parallel(params, maxShares: k, elements: elements * k * t) { share in
                return ek_winograd_output_f32(&share, m.pointer, biasPointer, y)
            }, "winograd output transform")
            first += count
        }
        return output
    }
}

extension Conv2d {
    /// Tiles per fused block: the largest multiple of 64 up to 256 whose transformed tiles and
    /// products (E·(C + K) floats a tile, E = (m + 2)²) stay within 2 MiB, so they live in L2
    /// and L3.
    static func fusedBlockTiles(c: Int, k: Int, elements: Int) -> Int {
        let perTile = elements * (c + k) * MemoryLayout<Float>.size
        return 64 * max(1, min(4, (2 << 20) / (perTile * 64)))
    }

    /// The convolution through `ek_winograd_fused_f32` (tile blocks through the input transform,
    /// the packed products and the output transform while in cache), or nil when it has too few
    /// blocks to keep every thread busy: each block multiplies by all E transformed weight
    /// matrices, so the unfused path, which splits the E products over threads, serves small
    /// batches of many channels (ResNet's last stage) better.
    private static func fusedWinograd(_ input: Tensor, outShape: [Int], tilesPerImage: Int, elements: Int, u: Tensor,
                                      bias: Tensor?, params: ek_conv2d_params) -> Tensor? {
        let (c, k) = (input.shape[1], outShape[1])
        let block = fusedBlockTiles(c: c, k: k, elements: elements)
        let blocks = (input.shape[0] * tilesPerImage + block - 1) / block
        let threads = Runtime.threadCount
        guard blocks >= 2 * threads else { return nil }
        var query = params
        let workFloats = Int(ek_winograd_fused_work_floats(&query, Int64(block)))
        guard workFloats > 0 else { return nil }
        let work = ScratchBuffer.shared.acquire(count: threads * workFloats)
        defer { ScratchBuffer.shared.release(work) }
        let output = Tensor(uninitialized: outShape)
        let (x, y, w, b) = (input.storage.pointer, output.storage.pointer, u.storage.pointer, bias?.storage.pointer)
        checkKernel(Runtime.parallel(params, maxShares: min(blocks, threads), elements: .max) { share in
            ek_winograd_fused_f32(&share, w, x, b, y, work.pointer + Int(share.ith) * workFloats, Int64(block))
        }, "fused winograd")
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
            dilation_h: 1, dilation_w: 1, activation: EK_ACT_NONE, ith: 0, nth: 1, winograd_tile: Runtime.winogradTile)
    }

    /// From this many tiles per call up, the input gradient transforms its weights afresh
    /// instead of keeping them. A kept copy is 4–7× the weights' memory for the rest of the
    /// process (ResNet34's, F(4×4) and F(5×5): 330 MB, the largest item of an Integrated
    /// Gradients call after the recorded activations), while the transform writes E floats per
    /// channel pair against E·T multiply-adds in the products (E = (m + 2)², T tiles): on Zen 3,
    /// transforming every layer afresh at IG's 16 images cost 5 % of the call, most of it in
    /// the 7×7 stage (64 tiles). From 128 tiles (at 16 images, the 56², 28² and 14² stages) it
    /// costs about 2 % and saves 160 MB; the 7×7 stage and small calls (a single image's
    /// gradient) keep theirs.
    static let transientGradientWeightTiles = 128

    /// The weights transposed and flipped (`[C, K, 3, 3]`) through the Winograd weight transform
    /// of tile `tile`: `[E, C, K]` (4–7× the weight's memory), kept after the first use when
    /// `keep` (for layers whose gradient is taken through Winograd at small batches).
    private func winogradTransposedWeights(packed: Bool, tile: Int32, keep: Bool) -> Tensor {
        let make = {
            var params = transposedParams(for: [1, outChannels, 8, 8])
            params.winograd_tile = tile
            return Self.winogradTransform(weight, params: params, packed: packed, transposed: true)
        }
        return keep ? winogradBackwardCache.get(packed: packed, tile: tile, make) : make()
    }

    /// dL/dx `[N, C, H, W]` from dL/dy `[N, K, OH, OW]` through Winograd: the input gradient of
    /// a 3×3 stride-1 convolution is itself a 3×3 stride-1 convolution of dL/dy with the
    /// weights transposed and flipped (padding 2 − P), so it gets the forward's 2.25–4× saving
    /// in multiply-adds. Nil when Winograd is off, does not apply or would not pay.
    ///
    /// - Precondition: BLAS loaded with one OpenBLAS thread.
    func winogradInputGradient(_ outputGradient: Tensor, inputShape: [Int]) -> Tensor? {
        guard Runtime.winogradEnabled, usesWinograd, padding.h <= 2, padding.w <= 2,
              let plan = Self.winogradPlan(transposedParams(for: outputGradient.shape)) else { return nil }
        let packed = Runtime.packedProducts, tile = plan.params.winograd_tile
        let keep = plan.tilesPerImage * inputShape[0] < Self.transientGradientWeightTiles
        return Self.winograd(outputGradient, outShape: inputShape, tile: tile, tilesPerImage: plan.tilesPerImage,
                             u: winogradTransposedWeights(packed: packed, tile: tile, keep: keep), packed: packed,
                             bias: nil, params: transposedParams(for:))
    }
}
