import CKernels
import TestSupport
import XCTest

/// Winograd F(m×m, 3×3), m = 4, 5, 6: the three transforms plus (m + 2)² products reproduce a
/// direct convolution.
final class WinogradTests: KernelTestCase {
    /// Transforms, products and output transform with one share per kernel, or `shares` of them.
    func runWinograd(_ cc: ConvCase, x: [Float], weight: [Float], bias: [Float]?, shares: Int32 = 1) -> [Float] {
        var p = cc.params
        var tilesH: Int64 = 0, tilesW: Int64 = 0
        XCTAssertEqual(ek_winograd_tiles(&p, &tilesH, &tilesW), EK_OK)
        let t = cc.n * Int(tilesH * tilesW), elements = cc.winogradElements
        var u = [Float](repeating: .nan, count: elements * cc.k * cc.c)
        var v = [Float](repeating: .nan, count: elements * cc.c * t)
        var m = [Float](repeating: .nan, count: elements * cc.k * t)
        var y = [Float](repeating: .nan, count: cc.n * cc.k * cc.oh * cc.ow)
        for ith in 0..<shares {
            p.ith = ith
            p.nth = shares
            XCTAssertEqual(ek_winograd_weight_f32(&p, weight, &u), EK_OK)
            XCTAssertEqual(ek_winograd_input_f32(&p, x, &v), EK_OK)
        }
        XCTAssertFalse(u.contains { $0.isNaN } || v.contains { $0.isNaN }, "shares leave gaps: \(cc)")
        for e in 0..<elements {
            u.withUnsafeBufferPointer { u in
                v.withUnsafeBufferPointer { v in
                    m.withUnsafeMutableBufferPointer { m in
                        XCTAssertEqual(ek_gemm_f32(0, 0, Int64(cc.k), Int64(t), Int64(cc.c), 1,
                                                   u.baseAddress! + e * cc.k * cc.c, Int64(cc.c),
                                                   v.baseAddress! + e * cc.c * t, Int64(t), 0,
                                                   m.baseAddress! + e * cc.k * t, Int64(t)), EK_OK)
                    }
                }
            }
        }
        for ith in 0..<shares {
            p.ith = ith
            p.nth = shares
            XCTAssertEqual(ek_winograd_output_f32(&p, m, bias, &y), EK_OK)
        }
        return y
    }

    let cases = [
        ConvCase(n: 1, c: 1, h: 4, w: 4, k: 1, r: 3, s: 3, ph: 1, pw: 1),              // one tile
        ConvCase(n: 2, c: 3, h: 9, w: 11, k: 5, r: 3, s: 3, ph: 1, pw: 1, relu: true),  // partial tiles
        ConvCase(n: 1, c: 4, h: 14, w: 14, k: 6, r: 3, s: 3, ph: 1, pw: 1, bias: false),
        ConvCase(n: 3, c: 2, h: 7, w: 7, k: 3, r: 3, s: 3, ph: 1, pw: 1),               // ResNet's 7×7 stage
        ConvCase(n: 1, c: 3, h: 10, w: 6, k: 2, r: 3, s: 3),                            // no padding
        ConvCase(n: 1, c: 2, h: 5, w: 8, k: 3, r: 3, s: 3, ph: 2, pw: 0, relu: true),   // uneven padding
        ConvCase(n: 1, c: 2, h: 1, w: 1, k: 2, r: 3, s: 3, ph: 1, pw: 1),               // all padding but one
        ConvCase(n: 2, c: 16, h: 17, w: 23, k: 24, r: 3, s: 3, ph: 1, pw: 1),
    ]

    /// Relative L2 error allowed per tile size. F(4×4): 2e-6, well above float32 rounding
    /// through Winograd at these depths. The larger tiles' transforms have larger coefficients:
    /// a float32 emulation (tools/compare_occlusion.py --winograd-error) puts their error at
    /// 1.45 (F(5×5)) and 1.9–2 (F(6×6)) times F(4×4)'s at every channel count, so 1.5 and 2
    /// times F(4×4)'s bound.
    static let errorBound: [Int32: Double] = [4: 2e-6, 5: 3e-6, 6: 4e-6]

    func testMatchesDirectConvolution() {
        var rng = SeededGenerator(seed: 7)
        for cc in cases.flatMap(\.everyTile) {
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * 9)
            let bias: [Float]? = cc.bias ? rng.floats(cc.k) : nil
            let expected = naiveConv(cc, x: x, weight: weight, bias: bias)
            let actual = runWinograd(cc, x: x, weight: weight, bias: bias)
            XCTAssertLessThan(relativeL2Error(actual, expected), Self.errorBound[cc.tile]!, "\(cc)")
            // Element-wise, the error scales with the sums' magnitude, not with each output.
            let scale = expected.map { abs($0) }.max() ?? 1
            assertClose(actual, expected, rtol: 1e-4, atol: 1e-5 * scale, "\(cc)")
        }
    }

    func testSharesGiveTheSameBits() {
        var rng = SeededGenerator(seed: 8)
        for cc in ConvCase(n: 2, c: 5, h: 13, w: 9, k: 7, r: 3, s: 3, ph: 1, pw: 1, relu: true).everyTile {
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * 9)
            let bias = rng.floats(cc.k)
            let whole = runWinograd(cc, x: x, weight: weight, bias: bias)
            for shares: Int32 in [2, 3, 8] {
                assertBitEqual(runWinograd(cc, x: x, weight: weight, bias: bias, shares: shares), whole,
                               "\(cc), \(shares) shares")
            }
        }
    }

    func testEveryInstructionSetGivesTheScalarBits() {
        var rng = SeededGenerator(seed: 9)
        // The last case has over 64 tiles a row.
        for cc in (cases + [ConvCase(n: 1, c: 3, h: 9, w: 300, k: 2, r: 3, s: 3, ph: 1, pw: 1, relu: true)]).flatMap(\.everyTile) {
            let x = rng.spicyFloats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * 9)
            let bias: [Float]? = cc.bias ? rng.floats(cc.k) : nil
            compareWithScalar({ runWinograd(cc, x: x, weight: weight, bias: bias) }) { reference, other, isa in
                assertBitEqual(other, reference, "\(cc) on \(String(cString: ek_isa_name(isa)))")
            }
        }
    }

    func testAppliesOnlyToThreeByThreeStrideOne() {
        var ok = ConvCase(n: 1, c: 2, h: 8, w: 8, k: 2, r: 3, s: 3, ph: 1, pw: 1).params
        XCTAssertEqual(ek_winograd_applies(&ok), 1)
        for cc in [ConvCase(n: 1, c: 2, h: 8, w: 8, k: 2, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1),
                   ConvCase(n: 1, c: 2, h: 8, w: 8, k: 2, r: 1, s: 1),
                   ConvCase(n: 1, c: 2, h: 8, w: 8, k: 2, r: 3, s: 3, ph: 1, pw: 1, dh: 2, dw: 2),
                   ConvCase(n: 1, c: 2, h: 8, w: 8, k: 2, r: 3, s: 3, ph: 3, pw: 3),
                   ConvCase(n: 1, c: 2, h: 2, w: 2, k: 2, r: 3, s: 3)] {  // empty output
            var p = cc.params
            XCTAssertEqual(ek_winograd_applies(&p), 0, "\(cc)")
            var th: Int64 = 0, tw: Int64 = 0
            XCTAssertEqual(ek_winograd_tiles(&p, &th, &tw), EK_ERR_INVALID_ARGUMENT, "\(cc)")
            let source: [Float] = [0]
            var target: [Float] = [0]
            XCTAssertEqual(ek_winograd_input_f32(&p, source, &target), EK_ERR_INVALID_ARGUMENT, "\(cc)")
            XCTAssertEqual(ek_winograd_output_f32(&p, source, nil, &target), EK_ERR_INVALID_ARGUMENT, "\(cc)")
            XCTAssertEqual(ek_winograd_weight_f32(&p, source, &target), EK_ERR_INVALID_ARGUMENT, "\(cc)")
        }
        for tile: Int32 in [1, 3, 7, -4] {
            var p = ok
            p.winograd_tile = tile
            XCTAssertEqual(ek_winograd_applies(&p), 0, "tile \(tile)")
            XCTAssertEqual(ek_winograd_elements(&p), 0, "tile \(tile)")
        }
        var shareless = ok
        shareless.nth = 0
        let source: [Float] = [0]
        var target: [Float] = [0]
        XCTAssertEqual(ek_winograd_input_f32(&shareless, source, &target), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_winograd_input_f32(&ok, nil, &target), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_winograd_applies(nil), 0)
    }

    /// The input gradient's weights read the forward's in place (each kernel transposed and
    /// flipped) and give the bits of transforming an explicitly flipped copy, plain and packed,
    /// for every tile, with shares of whole panels.
    func testTransposedWeightsEqualTheFlippedCopyTransformed() {
        var rng = SeededGenerator(seed: 16)
        // The gradient's convolution: C = the forward's K channels in, K = the forward's C out.
        for cc in ConvCase(n: 1, c: 13, h: 14, w: 14, k: 20, r: 3, s: 3, ph: 1, pw: 1).everyTile {
            let forward = rng.floats(cc.c * cc.k * 9)  // [C_forward = cc.k, K_forward = cc.c, 3, 3]
            var flipped = [Float](repeating: 0, count: forward.count)
            for outer in 0..<cc.k {      // the gradient's output channel = the forward's input channel
                for inner in 0..<cc.c {  // the gradient's input channel = the forward's output channel
                    for tap in 0..<9 { flipped[(outer * cc.c + inner) * 9 + tap] = forward[(inner * cc.k + outer) * 9 + 8 - tap] }
                }
            }
            var p = cc.params
            for packed in [false, true] {
                let count = cc.winogradElements * (packed ? Int(ek_gemm_packed_a_floats(Int64(cc.k), Int64(cc.c))) : cc.k * cc.c)
                var expected = [Float](repeating: .nan, count: count)
                XCTAssertEqual(packed ? ek_winograd_weight_packed_f32(&p, flipped, &expected)
                                      : ek_winograd_weight_f32(&p, flipped, &expected), EK_OK)
                for shares: Int32 in [1, 2, 5] {
                    var actual = [Float](repeating: .nan, count: count)
                    for ith in 0..<shares {
                        p.ith = ith
                        p.nth = shares
                        XCTAssertEqual(ek_winograd_weight_transposed_f32(&p, forward, &actual, packed ? 1 : 0), EK_OK)
                    }
                    p.ith = 0
                    p.nth = 1
                    assertBitEqual(actual, expected, "\(cc), packed \(packed), \(shares) shares")
                }
            }
        }
    }

    /// The automatic tile: the cheapest products, F(5×5)'s and F(6×6)'s weighted 1.12 and 1.2
    /// for their dearer transforms, whatever the batch (an image's results must not depend on
    /// its batch); a forced tile is used as given.
    func testTileSizeFollowsThePlane() {
        // Output plane (padding 1) → tile: ResNet at 224² (56, 28, 14, 7), at 192² (48, 24,
        // 12, 6), at 256² (64, 32, 16, 8), and a non-square plane decided by both sides.
        let expected: [(h: Int, w: Int, tile: Int32)] = [
            (56, 56, 4), (28, 28, 4), (14, 14, 5), (7, 7, 4),
            (48, 48, 6), (24, 24, 6), (12, 12, 6), (6, 6, 6),
            (64, 64, 4), (32, 32, 4), (16, 16, 4), (8, 8, 4),
            (14, 16, 4), (5, 5, 5), (1, 1, 4)]
        for (h, w, tile) in expected {
            for n in [1, 3, 32] {
                var p = ConvCase(n: n, c: 2, h: h, w: w, k: 2, r: 3, s: 3, ph: 1, pw: 1).params
                XCTAssertEqual(ek_winograd_tile_size(&p), tile, "\(n)×\(h)×\(w)")
                XCTAssertEqual(ek_winograd_elements(&p), Int64((tile + 2) * (tile + 2)), "\(n)×\(h)×\(w)")
                var th: Int64 = 0, tw: Int64 = 0
                XCTAssertEqual(ek_winograd_tiles(&p, &th, &tw), EK_OK)
                XCTAssertEqual(th, Int64((h + Int(tile) - 1) / Int(tile)))
                XCTAssertEqual(tw, Int64((w + Int(tile) - 1) / Int(tile)))
                for forced: Int32 in [4, 5, 6] {
                    p.winograd_tile = forced
                    XCTAssertEqual(ek_winograd_tile_size(&p), forced)
                }
            }
        }
    }
}
