import CKernels
import TestSupport
import XCTest

/// A convolution case: input (n, c, h, w), k filters of r×s, strides, pads, dilations.
struct ConvCase: CustomStringConvertible {
    var n = 1, c = 1, h = 1, w = 1, k = 1, r = 1, s = 1
    var sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1
    var relu = false, bias = true
    /// The Winograd tile m to force (4, 5, 6), or 0 for the kernels' own choice.
    var tile: Int32 = 0

    var params: ek_conv2d_params {
        var p = ek_conv2d_params()
        p.n = Int64(n); p.c = Int64(c); p.h = Int64(h); p.w = Int64(w); p.k = Int64(k)
        p.r = Int64(r); p.s = Int64(s)
        p.stride_h = Int64(sh); p.stride_w = Int64(sw); p.pad_h = Int64(ph); p.pad_w = Int64(pw)
        p.dilation_h = Int64(dh); p.dilation_w = Int64(dw)
        p.activation = relu ? EK_ACT_RELU : EK_ACT_NONE
        p.ith = 0; p.nth = 1
        p.winograd_tile = tile
        return p
    }
    // Independent of the C code: PyTorch's formula.
    var oh: Int { (h + 2 * ph - dh * (r - 1) - 1) / sh + 1 }
    var ow: Int { (w + 2 * pw - dw * (s - 1) - 1) / sw + 1 }
    /// Winograd's products per convolution, (m + 2)², for these params.
    var winogradElements: Int {
        var p = params
        return Int(ek_winograd_elements(&p))
    }
    /// This case at each Winograd tile size.
    var everyTile: [ConvCase] {
        [Int32(4), 5, 6].map { tile in
            var forced = self
            forced.tile = tile
            return forced
        }
    }
    var description: String {
        "n\(n) c\(c) \(h)x\(w) k\(k) \(r)x\(s) stride \(sh),\(sw) pad \(ph),\(pw) dil \(dh),\(dw) relu \(relu) bias \(bias)" + (tile == 0 ? "" : " F(\(tile))")
    }
}

/// x[c, ih, iw] for one image, or 0 in the padding.
private func pixel(_ x: [Float], _ cc: ConvCase, image: Int, c: Int, ih: Int, iw: Int) -> Float {
    guard ih >= 0, ih < cc.h, iw >= 0, iw < cc.w else { return 0 }
    return x[((image * cc.c + c) * cc.h + ih) * cc.w + iw]
}

/// Direct convolution with Double accumulation.
func naiveConv(_ cc: ConvCase, x: [Float], weight: [Float], bias: [Float]?) -> [Float] {
    var y = [Float](repeating: 0, count: cc.n * cc.k * cc.oh * cc.ow)
    for img in 0..<cc.n {
        for k in 0..<cc.k {
            for oh in 0..<cc.oh {
                for ow in 0..<cc.ow {
                    var acc = Double(bias?[k] ?? 0)
                    for c in 0..<cc.c {
                        for i in 0..<cc.r {
                            for j in 0..<cc.s {
                                let v = pixel(x, cc, image: img, c: c, ih: oh * cc.sh - cc.ph + i * cc.dh,
                                              iw: ow * cc.sw - cc.pw + j * cc.dw)
                                acc += Double(v) * Double(weight[((k * cc.c + c) * cc.r + i) * cc.s + j])
                            }
                        }
                    }
                    if cc.relu { acc = max(acc, 0) }
                    y[((img * cc.k + k) * cc.oh + oh) * cc.ow + ow] = Float(acc)
                }
            }
        }
    }
    return y
}

/// The column matrix of image 0, built directly from the definition.
func naiveIm2col(_ cc: ConvCase, x: [Float]) -> [Float] {
    var col = [Float](repeating: 0, count: cc.c * cc.r * cc.s * cc.oh * cc.ow)
    var idx = 0
    for c in 0..<cc.c {
        for i in 0..<cc.r {
            for j in 0..<cc.s {
                for oh in 0..<cc.oh {
                    for ow in 0..<cc.ow {
                        col[idx] = pixel(x, cc, image: 0, c: c, ih: oh * cc.sh - cc.ph + i * cc.dh,
                                         iw: ow * cc.sw - cc.pw + j * cc.dw)
                        idx += 1
                    }
                }
            }
        }
    }
    return col
}

/// Runs ek_conv2d_f32 with exactly the scratch it asks for.
func runConv(_ cc: ConvCase, x: [Float], weight: [Float], bias: [Float]?,
             file: StaticString = #filePath, line: UInt = #line) -> [Float] {
    var p = cc.params
    var y = [Float](repeating: .nan, count: cc.n * cc.k * cc.oh * cc.ow)
    let scratchCount = Int(ek_conv2d_scratch_size(&p))
    var scratch = [Float](repeating: .nan, count: max(scratchCount, 1))
    let st = withOptionalPointer(bias) { b in
        ek_conv2d_f32(&p, x, weight, b, &y, &scratch, Int64(scratchCount))
    }
    XCTAssertEqual(st, EK_OK, "\(cc)", file: file, line: line)
    return y
}

final class ConvolutionTests: KernelTestCase {
    private let cases: [ConvCase] = [
        ConvCase(n: 2, c: 5, h: 7, w: 9, k: 6, relu: true),                        // 1×1 direct
        ConvCase(n: 2, c: 4, h: 9, w: 11, k: 3, sh: 2, sw: 2),                     // 1×1 stride 2
        ConvCase(n: 1, c: 3, h: 8, w: 8, k: 4, r: 3, s: 3, ph: 1, pw: 1, relu: true),
        ConvCase(n: 3, c: 2, h: 10, w: 7, k: 5, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1, bias: false),
        ConvCase(n: 1, c: 3, h: 23, w: 19, k: 4, r: 7, s: 7, sh: 2, sw: 2, ph: 3, pw: 3, relu: true),  // stem
        ConvCase(n: 2, c: 3, h: 12, w: 10, k: 2, r: 5, s: 3, sh: 1, sw: 3, ph: 2, pw: 1, dh: 2, dw: 1),
        ConvCase(n: 1, c: 2, h: 9, w: 13, k: 3, r: 3, s: 2, sh: 3, sw: 2, ph: 0, pw: 2, dh: 1, dw: 3, relu: true),
        ConvCase(n: 1, c: 1, h: 1, w: 1, k: 1, r: 3, s: 3, ph: 1, pw: 1),         // 1×1 image, all padding
        ConvCase(n: 1, c: 2, h: 5, w: 40, k: 3, r: 1, s: 3, pw: 1, dw: 2, bias: false),  // wide rows
        ConvCase(n: 2, c: 3, h: 6, w: 6, k: 2, r: 6, s: 6),                        // kernel = image
    ]

    func testConvolutionMatchesNaiveReferenceOnEveryISA() {
        var rng = SeededGenerator(seed: 1)
        for cc in cases {
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * cc.r * cc.s)
            let bias: [Float]? = cc.bias ? rng.floats(cc.k) : nil
            let expected = naiveConv(cc, x: x, weight: weight, bias: bias)
            for isa in supportedISAs() {
                _ = ek_set_isa(isa)
                assertClose(runConv(cc, x: x, weight: weight, bias: bias), expected,
                            rtol: 1e-4, atol: 1e-5, "\(cc) on \(String(cString: ek_isa_name(isa)))")
            }
        }
    }

    func testOutputAndScratchSizes() {
        var p = ConvCase(n: 1, c: 3, h: 224, w: 224, k: 64, r: 7, s: 7, sh: 2, sw: 2, ph: 3, pw: 3).params
        var oh: Int64 = 0, ow: Int64 = 0
        XCTAssertEqual(ek_conv2d_output_size(&p, &oh, &ow), EK_OK)
        XCTAssertEqual([oh, ow], [112, 112])
        XCTAssertEqual(ek_conv2d_scratch_size(&p), 3 * 49 * 112 * 112)

        var direct = ConvCase(n: 4, c: 64, h: 56, w: 56, k: 256).params
        XCTAssertEqual(ek_conv2d_scratch_size(&direct), 0)
        var down = ConvCase(n: 1, c: 256, h: 56, w: 56, k: 512, sh: 2, sw: 2).params
        XCTAssertEqual(ek_conv2d_scratch_size(&down), 256 * 28 * 28)

        var nonSquare = ConvCase(c: 2, h: 10, w: 7, r: 3, s: 2, sh: 2, sw: 1, ph: 1, pw: 0, dh: 2, dw: 3).params
        XCTAssertEqual(ek_conv2d_output_size(&nonSquare, &oh, &ow), EK_OK)
        XCTAssertEqual([oh, ow], [4, 4])

        var tooBig = ConvCase(h: 4, w: 4, r: 5, s: 5).params
        XCTAssertEqual(ek_conv2d_output_size(&tooBig, &oh, &ow), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_scratch_size(&tooBig), 0)
    }

    /// im2col is a pure copy, so every ISA must equal the definition exactly.
    func testIm2colEqualsDefinitionOnEveryISA() {
        var rng = SeededGenerator(seed: 2)
        for trial in 0..<150 {
            var cc = ConvCase()
            cc.c = rng.int(1...3)
            cc.r = rng.int(1...4); cc.s = rng.int(1...4)
            cc.sh = rng.int(1...3); cc.sw = trial % 3 == 0 ? 2 : rng.int(1...3)
            cc.dh = rng.int(1...2); cc.dw = rng.int(1...2)
            cc.ph = rng.int(0...3); cc.pw = rng.int(0...3)
            cc.h = rng.int(1...12); cc.w = rng.int(1...45)
            guard cc.h + 2 * cc.ph >= cc.dh * (cc.r - 1) + 1, cc.w + 2 * cc.pw >= cc.dw * (cc.s - 1) + 1 else { continue }
            cc.n = rng.int(0...2)  // ignored by im2col
            let x = rng.floats(cc.c * cc.h * cc.w)
            let expected = naiveIm2col(cc, x: x)
            for isa in supportedISAs() {
                _ = ek_set_isa(isa)
                var p = cc.params
                var col = [Float](repeating: .nan, count: expected.count)
                XCTAssertEqual(ek_im2col_f32(&p, x, &col), EK_OK, "\(cc)")
                assertBitEqual(col, expected, "\(cc) on \(String(cString: ek_isa_name(isa)))")
            }
        }
    }

    func testIm2colSharesCoverTheMatrix() {
        var rng = SeededGenerator(seed: 3)
        let cc = ConvCase(c: 3, h: 11, w: 13, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1)
        let x = rng.floats(cc.c * cc.h * cc.w)
        var p = cc.params
        var whole = [Float](repeating: .nan, count: cc.c * 9 * cc.oh * cc.ow)
        XCTAssertEqual(ek_im2col_f32(&p, x, &whole), EK_OK)
        for nth in [2, 3, 7, 40] {
            var parts = [Float](repeating: .nan, count: whole.count)
            for ith in 0..<nth {
                p.ith = Int32(ith); p.nth = Int32(nth)
                XCTAssertEqual(ek_im2col_f32(&p, x, &parts), EK_OK)
            }
            assertBitEqual(parts, whole, "nth \(nth)")
        }
    }

    func testBiasActMatchesScalarBitExactly() {
        var rng = SeededGenerator(seed: 4)
        for hw in tailSizes() {
            let k = rng.int(1...3)
            let y0 = rng.spicyFloats(k * hw)
            let bias = rng.floats(k)
            for (act, withBias) in [(EK_ACT_RELU, true), (EK_ACT_NONE, true), (EK_ACT_RELU, false)] {
                compareWithScalar({
                    var y = y0
                    let st = withOptionalPointer(withBias ? bias : nil) {
                        ek_bias_act_f32(Int64(k), Int64(hw), $0, act, &y, 0, 1)
                    }
                    XCTAssertEqual(st, EK_OK)
                    return y
                }, check: { ref, got, isa in
                    assertBitEqual(got, ref, "hw \(hw) act \(act.rawValue) bias \(withBias) \(isa.rawValue)")
                })
                // And against the definition.
                var y = y0
                _ = withOptionalPointer(withBias ? bias : nil) {
                    ek_bias_act_f32(Int64(k), Int64(hw), $0, act, &y, 0, 1)
                }
                let expected = (0..<(k * hw)).map { i -> Float in
                    let v = y0[i] + (withBias ? bias[i / hw] : 0)
                    return act == EK_ACT_RELU ? max(v, 0) : v
                }
                assertClose(y, expected, rtol: 0, atol: 0)
            }
        }
    }

    func testBiasActSharesCoverAllChannels() {
        var rng = SeededGenerator(seed: 5)
        let (k, hw) = (13, 37)
        let y0 = rng.floats(k * hw), bias = rng.floats(k)
        var whole = y0
        XCTAssertEqual(ek_bias_act_f32(Int64(k), Int64(hw), bias, EK_ACT_RELU, &whole, 0, 1), EK_OK)
        for nth in [2, 5, 13, 20] {
            var parts = y0
            for ith in 0..<nth {
                XCTAssertEqual(ek_bias_act_f32(Int64(k), Int64(hw), bias, EK_ACT_RELU, &parts, Int32(ith), Int32(nth)), EK_OK)
            }
            assertBitEqual(parts, whole, "nth \(nth)")
        }
    }

    func testConvolutionRejectsBadArguments() {
        let cc = ConvCase(n: 1, c: 2, h: 6, w: 6, k: 2, r: 3, s: 3, ph: 1, pw: 1)
        let x = [Float](repeating: 1, count: 72), w = [Float](repeating: 1, count: 36)
        var y = [Float](repeating: 0, count: 72)
        let need = 2 * 9 * 36
        var scratch = [Float](repeating: 0, count: need)
        var p = cc.params
        XCTAssertEqual(ek_conv2d_f32(&p, x, w, nil, &y, &scratch, Int64(need)), EK_OK)
        XCTAssertEqual(ek_conv2d_f32(&p, x, w, nil, &y, &scratch, Int64(need - 1)), EK_ERR_SCRATCH_TOO_SMALL)
        XCTAssertEqual(ek_conv2d_f32(&p, x, w, nil, &y, nil, 0), EK_ERR_SCRATCH_TOO_SMALL)
        XCTAssertEqual(ek_conv2d_f32(&p, nil, w, nil, &y, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_f32(&p, x, nil, nil, &y, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_f32(&p, x, w, nil, nil, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_f32(nil, x, w, nil, &y, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)

        let mutations: [(inout ek_conv2d_params) -> Void] = [
            { $0.n = 0 }, { $0.c = -1 }, { $0.h = 0 }, { $0.k = 0 }, { $0.r = 0 }, { $0.s = -2 },
            { $0.stride_h = 0 }, { $0.stride_w = -1 }, { $0.pad_h = -1 }, { $0.dilation_w = 0 },
            { $0.activation = ek_activation(rawValue: 7) }, { $0.r = 20 },
        ]
        for (i, mutate) in mutations.enumerated() {
            var bad = cc.params
            mutate(&bad)
            XCTAssertEqual(ek_conv2d_f32(&bad, x, w, nil, &y, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT, "mutation \(i)")
            XCTAssertEqual(ek_im2col_f32(&bad, x, &scratch), i == 0 ? EK_OK : EK_ERR_INVALID_ARGUMENT, "mutation \(i)")
        }
        var direct = ConvCase(n: 1, c: 2, h: 6, w: 6, k: 2).params
        XCTAssertEqual(ek_conv2d_f32(&direct, x, w, nil, &y, nil, 0), EK_OK, "1×1 direct needs no scratch")
        var badShare = cc.params
        badShare.ith = 2; badShare.nth = 2
        XCTAssertEqual(ek_im2col_f32(&badShare, x, &scratch), EK_ERR_INVALID_ARGUMENT)
        badShare.ith = 0; badShare.nth = 0
        XCTAssertEqual(ek_im2col_f32(&badShare, x, &scratch), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_f32(&badShare, x, w, nil, &y, &scratch, Int64(need)), EK_OK, "conv ignores ith/nth")

        XCTAssertEqual(ek_bias_act_f32(0, 4, nil, EK_ACT_RELU, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_bias_act_f32(2, 0, nil, EK_ACT_RELU, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_bias_act_f32(2, 4, nil, EK_ACT_RELU, nil, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_bias_act_f32(2, 4, nil, EK_ACT_RELU, &y, 1, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_bias_act_f32(2, 4, nil, EK_ACT_RELU, &y, -1, 3), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_bias_act_f32(2, 4, nil, ek_activation(rawValue: 9), &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
    }
}
