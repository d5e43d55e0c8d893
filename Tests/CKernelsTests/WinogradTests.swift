import CKernels
import TestSupport
import XCTest

/// Winograd F(4×4, 3×3): the three transforms plus 36 products reproduce a direct convolution.
final class WinogradTests: KernelTestCase {
    /// Transforms, products and output transform with one share per kernel, or `shares` of them.
    func runWinograd(_ cc: ConvCase, x: [Float], weight: [Float], bias: [Float]?, shares: Int32 = 1) -> [Float] {
        var p = cc.params
        var tilesH: Int64 = 0, tilesW: Int64 = 0
        XCTAssertEqual(ek_winograd_tiles(&p, &tilesH, &tilesW), EK_OK)
        let t = cc.n * Int(tilesH * tilesW)
        var u = [Float](repeating: .nan, count: 36 * cc.k * cc.c)
        var v = [Float](repeating: .nan, count: 36 * cc.c * t)
        var m = [Float](repeating: .nan, count: 36 * cc.k * t)
        var y = [Float](repeating: .nan, count: cc.n * cc.k * cc.oh * cc.ow)
        for ith in 0..<shares {
            p.ith = ith
            p.nth = shares
            XCTAssertEqual(ek_winograd_weight_f32(&p, weight, &u), EK_OK)
            XCTAssertEqual(ek_winograd_input_f32(&p, x, &v), EK_OK)
        }
        XCTAssertFalse(u.contains { $0.isNaN } || v.contains { $0.isNaN }, "shares leave gaps: \(cc)")
        for e in 0..<36 {
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

    func testMatchesDirectConvolution() {
        var rng = SeededGenerator(seed: 7)
        for cc in cases {
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * 9)
            let bias: [Float]? = cc.bias ? rng.floats(cc.k) : nil
            let expected = naiveConv(cc, x: x, weight: weight, bias: bias)
            let actual = runWinograd(cc, x: x, weight: weight, bias: bias)
            XCTAssertLessThan(relativeL2Error(actual, expected), 2e-6, "\(cc)")
            // Element-wise, the error scales with the sums' magnitude, not with each output.
            let scale = expected.map { abs($0) }.max() ?? 1
            assertClose(actual, expected, rtol: 1e-4, atol: 1e-5 * scale, "\(cc)")
        }
    }

    func testSharesGiveTheSameBits() {
        var rng = SeededGenerator(seed: 8)
        let cc = ConvCase(n: 2, c: 5, h: 13, w: 9, k: 7, r: 3, s: 3, ph: 1, pw: 1, relu: true)
        let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
        let weight = rng.floats(cc.k * cc.c * 9)
        let bias = rng.floats(cc.k)
        let whole = runWinograd(cc, x: x, weight: weight, bias: bias)
        for shares: Int32 in [2, 3, 8] {
            assertBitEqual(runWinograd(cc, x: x, weight: weight, bias: bias, shares: shares), whole, "\(shares) shares")
        }
    }

    func testEveryInstructionSetGivesTheScalarBits() {
        var rng = SeededGenerator(seed: 9)
        for cc in cases + [ConvCase(n: 1, c: 3, h: 9, w: 300, k: 2, r: 3, s: 3, ph: 1, pw: 1, relu: true)] {  // > 64 tiles a row
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
        var shareless = ok
        shareless.nth = 0
        let source: [Float] = [0]
        var target: [Float] = [0]
        XCTAssertEqual(ek_winograd_input_f32(&shareless, source, &target), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_winograd_input_f32(&ok, nil, &target), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_winograd_applies(nil), 0)
    }
}
