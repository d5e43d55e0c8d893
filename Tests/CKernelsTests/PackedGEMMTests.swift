import CKernels
import TestSupport
import XCTest

/// `ek_gemm_packed_f32`: the packed layouts, the definition (a double-precision product), the
/// same bits at every level and share split, bias and ReLU in the store, and the image layout
/// of C; and the packed Winograd transforms equal to the plain ones repacked.
final class PackedGEMMTests: KernelTestCase {
    /// Packs `a` (M×K row-major) and `b` (K×N row-major, or images of `plane` columns) and runs
    /// the product over `shares` panel ranges into C laid out with `plane`/`imageStride`.
    func product(m: Int, n: Int, k: Int, a: [Float], b: [Float], bPlane: Int, bImageStride: Int,
                 cPlane: Int, cImageStride: Int, cCount: Int, bias: [Float]?, relu: Bool, shares: Int = 1) -> [Float] {
        var packedA = [Float](repeating: .nan, count: Int(ek_gemm_packed_a_floats(Int64(m), Int64(k))))
        var packedB = [Float](repeating: .nan, count: Int(ek_gemm_packed_b_floats(Int64(k), Int64(n))))
        for ith in 0..<Int32(shares) {
            XCTAssertEqual(ek_gemm_pack_a_f32(Int64(m), Int64(k), a, Int64(k), 1, &packedA, ith, Int32(shares)), EK_OK)
            XCTAssertEqual(ek_gemm_pack_b_f32(Int64(k), Int64(n), b, Int64(bPlane), Int64(bImageStride), &packedB,
                                              ith, Int32(shares)), EK_OK)
        }
        XCTAssertFalse(packedA.contains { $0.isNaN } || packedB.contains { $0.isNaN }, "packing leaves gaps")
        var c = [Float](repeating: -7, count: cCount)
        let panels = (n + 15) / 16
        packedA.withUnsafeBufferPointer { pa in
            packedB.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    (bias ?? []).withUnsafeBufferPointer { pbias in
                        for share in 0..<shares {
                            var p = ek_gemm_packed_params(
                                m: Int64(m), n: Int64(n), k: Int64(k), a: pa.baseAddress, b: pb.baseAddress,
                                c: pc.baseAddress, plane: Int64(cPlane), image_stride: Int64(cImageStride),
                                bias: bias == nil ? nil : pbias.baseAddress, activation: relu ? EK_ACT_RELU : EK_ACT_NONE,
                                panel_begin: Int64(panels * share / shares), panel_end: Int64(panels * (share + 1) / shares))
                            XCTAssertEqual(ek_gemm_packed_f32(&p), EK_OK)
                        }
                    }
                }
            }
        }
        return c
    }

    /// (m, n, k): tile edges in both directions, one and several k blocks (EK_GEMM_KC = 256).
    let shapes = [(1, 1, 1), (6, 16, 8), (7, 17, 3), (13, 40, 64), (64, 100, 257), (5, 33, 600), (20, 16, 512)]

    func testMatchesDefinitionAndIsTheSameAtEveryLevel() {
        var rng = SeededGenerator(seed: 11)
        for (m, n, k) in shapes {
            let a = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(m)
            for relu in [false, true] {
                compareWithScalar({
                    product(m: m, n: n, k: k, a: a, b: b, bPlane: n, bImageStride: 0, cPlane: n, cImageStride: 0,
                            cCount: m * n, bias: bias, relu: relu)
                }, check: { reference, other, isa in
                    assertBitEqual(other, reference, "\(m)×\(n)×\(k) relu \(relu) at \(isa)")
                })
                let c = product(m: m, n: n, k: k, a: a, b: b, bPlane: n, bImageStride: 0, cPlane: n, cImageStride: 0,
                                cCount: m * n, bias: bias, relu: relu)
                // Each element is a float32 sum of k products: within k·ε·Σ|a·b| of the exact one.
                for i in 0..<m {
                    for j in 0..<n {
                        var exact = Double(bias[i]), magnitude = abs(Double(bias[i]))
                        for kk in 0..<k {
                            exact += Double(a[i * k + kk]) * Double(b[kk * n + j])
                            magnitude += abs(Double(a[i * k + kk]) * Double(b[kk * n + j]))
                        }
                        if relu { exact = max(0, exact) }
                        let bound = Double(k + 2) * Double(Float.ulpOfOne) * magnitude
                        XCTAssertLessThanOrEqual(abs(Double(c[i * n + j]) - exact), bound, "\(m)×\(n)×\(k) (\(i), \(j))")
                    }
                }
            }
        }
    }

    func testSharesGiveTheSameBits() {
        var rng = SeededGenerator(seed: 12)
        let (m, n, k) = (13, 100, 300)
        let a = rng.floats(m * k), b = rng.floats(k * n)
        let whole = product(m: m, n: n, k: k, a: a, b: b, bPlane: n, bImageStride: 0, cPlane: n, cImageStride: 0,
                            cCount: m * n, bias: nil, relu: false)
        for shares in [2, 3, 7] {
            assertBitEqual(product(m: m, n: n, k: k, a: a, b: b, bPlane: n, bImageStride: 0, cPlane: n, cImageStride: 0,
                                   cCount: m * n, bias: nil, relu: false, shares: shares), whole, "\(shares) shares")
        }
    }

    /// B read as 3 images of [k, 21] and C written as 3 images of [m, 21] (NCHW): the same as the
    /// row-major product of the images side by side, rearranged.
    func testImageLayout() {
        var rng = SeededGenerator(seed: 13)
        let (m, k, plane, images) = (7, 9, 21, 3)
        let n = plane * images
        let a = rng.floats(m * k)
        let imagesB = rng.floats(images * k * plane)  // [images, k, plane]
        var sideBySide = [Float](repeating: 0, count: k * n)
        for image in 0..<images {
            for row in 0..<k {
                for pixel in 0..<plane { sideBySide[row * n + image * plane + pixel] = imagesB[(image * k + row) * plane + pixel] }
            }
        }
        let flat = product(m: m, n: n, k: k, a: a, b: sideBySide, bPlane: n, bImageStride: 0, cPlane: n, cImageStride: 0,
                           cCount: m * n, bias: nil, relu: true)
        let nchw = product(m: m, n: n, k: k, a: a, b: imagesB, bPlane: plane, bImageStride: k * plane, cPlane: plane,
                           cImageStride: m * plane, cCount: images * m * plane, bias: nil, relu: true)
        for image in 0..<images {
            for row in 0..<m {
                for pixel in 0..<plane {
                    XCTAssertEqual(nchw[(image * m + row) * plane + pixel].bitPattern,
                                   flat[row * n + image * plane + pixel].bitPattern)
                }
            }
        }
    }

    func testRejectsBadArguments() {
        var out = [Float](repeating: 0, count: 16)
        let a = [Float](repeating: 1, count: 96), b = [Float](repeating: 1, count: 256)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { pc in
                    var p = ek_gemm_packed_params(m: 1, n: 16, k: 16, a: pa.baseAddress, b: pb.baseAddress, c: pc.baseAddress,
                                                  plane: 16, image_stride: 0, bias: nil, activation: EK_ACT_NONE,
                                                  panel_begin: 0, panel_end: 2)
                    XCTAssertEqual(ek_gemm_packed_f32(&p), EK_ERR_INVALID_ARGUMENT, "panel past N")
                    p.panel_end = 1
                    p.plane = 0
                    XCTAssertEqual(ek_gemm_packed_f32(&p), EK_ERR_INVALID_ARGUMENT, "plane 0")
                    p.plane = 16
                    p.activation = EK_ACT_RELU
                    XCTAssertEqual(ek_gemm_packed_f32(&p), EK_OK)
                    p.a = nil
                    XCTAssertEqual(ek_gemm_packed_f32(&p), EK_ERR_INVALID_ARGUMENT, "no A")
                }
            }
        }
        XCTAssertEqual(ek_gemm_packed_a_floats(0, 3), 0)
        XCTAssertEqual(ek_gemm_packed_b_floats(3, 0), 0)
        XCTAssertEqual(ek_gemm_pack_a_f32(2, 2, [1, 2, 3, 4], 2, 1, &out, 1, 1), EK_ERR_INVALID_ARGUMENT)
    }

    /// The packed Winograd weight and input transforms write exactly the plain transforms'
    /// values, packed (every level, several shares).
    func testPackedWinogradTransformsEqualThePlainOnesPacked() {
        var rng = SeededGenerator(seed: 14)
        let cases = [ConvCase(n: 2, c: 5, h: 9, w: 11, k: 7, r: 3, s: 3, ph: 1, pw: 1),
                     ConvCase(n: 3, c: 16, h: 14, w: 14, k: 13, r: 3, s: 3, ph: 1, pw: 1),
                     ConvCase(n: 1, c: 3, h: 40, w: 70, k: 6, r: 3, s: 3, ph: 1, pw: 1)]
        for cc in cases.flatMap(\.everyTile) {
            var p = cc.params
            let elements = cc.winogradElements
            var tilesH: Int64 = 0, tilesW: Int64 = 0
            XCTAssertEqual(ek_winograd_tiles(&p, &tilesH, &tilesW), EK_OK)
            let t = cc.n * Int(tilesH * tilesW)
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w), weight = rng.floats(cc.k * cc.c * 9)
            let aStride = Int(ek_gemm_packed_a_floats(Int64(cc.k), Int64(cc.c)))
            let bStride = Int(ek_gemm_packed_b_floats(Int64(cc.c), Int64(t)))
            for isa in supportedISAs() {
                XCTAssertEqual(ek_set_isa(isa), isa)
                var u = [Float](repeating: .nan, count: elements * cc.k * cc.c)
                var v = [Float](repeating: .nan, count: elements * cc.c * t)
                XCTAssertEqual(ek_winograd_weight_f32(&p, weight, &u), EK_OK)
                XCTAssertEqual(ek_winograd_input_f32(&p, x, &v), EK_OK)
                var expectedU = [Float](repeating: .nan, count: elements * aStride)
                var expectedV = [Float](repeating: .nan, count: elements * bStride)
                for e in 0..<elements {
                    expectedU.withUnsafeMutableBufferPointer { out in
                        _ = ek_gemm_pack_a_f32(Int64(cc.k), Int64(cc.c), Array(u[(e * cc.k * cc.c)...]), Int64(cc.c), 1,
                                               out.baseAddress! + e * aStride, 0, 1)
                    }
                    expectedV.withUnsafeMutableBufferPointer { out in
                        _ = ek_gemm_pack_b_f32(Int64(cc.c), Int64(t), Array(v[(e * cc.c * t)...]), Int64(t), 0,
                                               out.baseAddress! + e * bStride, 0, 1)
                    }
                }
                var query = p
                let groups = Int32(ek_winograd_input_groups(&query))
                for shares in [Int32(1), 2, 3] {
                    var packedU = [Float](repeating: .nan, count: elements * aStride)
                    var packedV = [Float](repeating: .nan, count: elements * bStride)
                    for ith in 0..<shares {
                        p.ith = ith
                        p.nth = shares
                        XCTAssertEqual(ek_winograd_weight_packed_f32(&p, weight, &packedU), EK_OK)
                        if ith < max(1, min(shares, groups)) {
                            p.nth = max(1, min(shares, groups))
                            XCTAssertEqual(ek_winograd_input_packed_f32(&p, x, &packedV), EK_OK)
                        }
                    }
                    p.ith = 0
                    p.nth = 1
                    assertBitEqual(packedU, expectedU, "\(cc) weights, \(shares) shares at \(isa)")
                    assertBitEqual(packedV, expectedV, "\(cc) tiles, \(shares) shares at \(isa)")
                }
            }
            _ = ek_isa_reset()
        }
    }
}

/// `ek_winograd_fused_f32`: the same bits as the unfused packed path (packed input transform,
/// the (m + 2)² packed products, the output transform), for every tile size, block size, share
/// split and level.
final class FusedWinogradTests: KernelTestCase {
    func unfused(_ cc: ConvCase, x: [Float], u: [Float], bias: [Float]?) -> [Float] {
        var p = cc.params
        var tilesH: Int64 = 0, tilesW: Int64 = 0
        XCTAssertEqual(ek_winograd_tiles(&p, &tilesH, &tilesW), EK_OK)
        let t = cc.n * Int(tilesH * tilesW), elements = cc.winogradElements
        let aStride = Int(ek_gemm_packed_a_floats(Int64(cc.k), Int64(cc.c)))
        let bStride = Int(ek_gemm_packed_b_floats(Int64(cc.c), Int64(t)))
        var v = [Float](repeating: .nan, count: elements * bStride), m = [Float](repeating: .nan, count: elements * cc.k * t)
        var y = [Float](repeating: .nan, count: cc.n * cc.k * cc.oh * cc.ow)
        XCTAssertEqual(ek_winograd_input_packed_f32(&p, x, &v), EK_OK)
        u.withUnsafeBufferPointer { pu in
            v.withUnsafeBufferPointer { pv in
                m.withUnsafeMutableBufferPointer { pm in
                    for e in 0..<elements {
                        var g = ek_gemm_packed_params(m: Int64(cc.k), n: Int64(t), k: Int64(cc.c), a: pu.baseAddress! + e * aStride,
                                                      b: pv.baseAddress! + e * bStride, c: pm.baseAddress! + e * cc.k * t,
                                                      plane: Int64(t), image_stride: 0, bias: nil, activation: EK_ACT_NONE,
                                                      panel_begin: 0, panel_end: Int64((t + 15) / 16))
                        XCTAssertEqual(ek_gemm_packed_f32(&g), EK_OK)
                    }
                }
            }
        }
        XCTAssertEqual(ek_winograd_output_f32(&p, m, bias, &y), EK_OK)
        return y
    }

    func testFusedEqualsUnfusedBitForBit() {
        var rng = SeededGenerator(seed: 15)
        let cases = [ConvCase(n: 3, c: 16, h: 14, w: 14, k: 13, r: 3, s: 3, ph: 1, pw: 1, relu: true),  // 48 tiles: one partial block
                     ConvCase(n: 2, c: 8, h: 40, w: 37, k: 10, r: 3, s: 3, ph: 1, pw: 1),             // 200 tiles, cut tiles
                     ConvCase(n: 5, c: 7, h: 7, w: 7, k: 9, r: 3, s: 3, ph: 1, pw: 1, relu: true, bias: false)]
        for cc in cases.flatMap(\.everyTile) {
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w), weight = rng.floats(cc.k * cc.c * 9)
            let bias: [Float]? = cc.bias ? rng.floats(cc.k) : nil
            var p = cc.params
            for isa in supportedISAs() {
                XCTAssertEqual(ek_set_isa(isa), isa)
                var u = [Float](repeating: .nan,
                                count: cc.winogradElements * Int(ek_gemm_packed_a_floats(Int64(cc.k), Int64(cc.c))))
                XCTAssertEqual(ek_winograd_weight_packed_f32(&p, weight, &u), EK_OK)
                let expected = unfused(cc, x: x, u: u, bias: bias)
                for block in [64, 128] {
                    let workFloats = Int(ek_winograd_fused_work_floats(&p, Int64(block)))
                    XCTAssertGreaterThan(workFloats, 0)
                    for shares in [Int32(1), 2, 3] {
                        var y = [Float](repeating: .nan, count: expected.count)
                        var work = [Float](repeating: .nan, count: workFloats)
                        for ith in 0..<shares {
                            p.ith = ith
                            p.nth = shares
                            XCTAssertEqual(ek_winograd_fused_f32(&p, u, x, bias, &y, &work, Int64(block)), EK_OK)
                        }
                        p.ith = 0
                        p.nth = 1
                        assertBitEqual(y, expected, "\(cc), blocks of \(block), \(shares) shares at \(isa)")
                    }
                }
            }
            XCTAssertEqual(ek_winograd_fused_work_floats(&p, 48), 0, "blocks must be multiples of 64")
            _ = ek_isa_reset()
        }
    }
}
