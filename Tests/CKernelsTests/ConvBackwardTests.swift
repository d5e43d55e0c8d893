import CKernels
import TestSupport
import XCTest

/// The convolution of ConvolutionTests in Double (no activation): the forward that the
/// finite differences differentiate.
func convD(_ cc: ConvCase, x: [Double], weight: [Double], bias: [Double]?) -> [Double] {
    var y = [Double](repeating: 0, count: cc.n * cc.k * cc.oh * cc.ow)
    for img in 0..<cc.n {
        for k in 0..<cc.k {
            for oh in 0..<cc.oh {
                for ow in 0..<cc.ow {
                    var acc = bias?[k] ?? 0
                    for c in 0..<cc.c {
                        for i in 0..<cc.r {
                            let ih = oh * cc.sh - cc.ph + i * cc.dh
                            guard ih >= 0, ih < cc.h else { continue }
                            for j in 0..<cc.s {
                                let iw = ow * cc.sw - cc.pw + j * cc.dw
                                guard iw >= 0, iw < cc.w else { continue }
                                acc += x[((img * cc.c + c) * cc.h + ih) * cc.w + iw]
                                    * weight[((k * cc.c + c) * cc.r + i) * cc.s + j]
                            }
                        }
                    }
                    y[((img * cc.k + k) * cc.oh + oh) * cc.ow + ow] = acc
                }
            }
        }
    }
    return y
}

/// Calls body(img, k, oh, ow, c, i, j, ih, iw) for every tap that lands inside the input.
private func forEachTap(_ cc: ConvCase, _ body: (Int, Int, Int, Int, Int, Int, Int, Int, Int) -> Void) {
    for img in 0..<cc.n {
        for k in 0..<cc.k {
            for oh in 0..<cc.oh {
                for ow in 0..<cc.ow {
                    for c in 0..<cc.c {
                        for i in 0..<cc.r {
                            let ih = oh * cc.sh - cc.ph + i * cc.dh
                            guard ih >= 0, ih < cc.h else { continue }
                            for j in 0..<cc.s {
                                let iw = ow * cc.sw - cc.pw + j * cc.dw
                                guard iw >= 0, iw < cc.w else { continue }
                                body(img, k, oh, ow, c, i, j, ih, iw)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// dx[n,c,ih,iw] = Σ dy[n,k,oh,ow]·weight[k,c,i,j] over the taps that read (ih, iw).
func naiveConvBackInput(_ cc: ConvCase, dy: [Float], weight: [Float]) -> [Double] {
    var dx = [Double](repeating: 0, count: cc.n * cc.c * cc.h * cc.w)
    forEachTap(cc) { img, k, oh, ow, c, i, j, ih, iw in
        dx[((img * cc.c + c) * cc.h + ih) * cc.w + iw] +=
            Double(dy[((img * cc.k + k) * cc.oh + oh) * cc.ow + ow]) * Double(weight[((k * cc.c + c) * cc.r + i) * cc.s + j])
    }
    return dx
}

/// (dweight[k,c,i,j] = Σ dy·x over the taps, dbias[k] = Σ dy).
func naiveConvBackWeight(_ cc: ConvCase, x: [Float], dy: [Float]) -> ([Double], [Double]) {
    var dw = [Double](repeating: 0, count: cc.k * cc.c * cc.r * cc.s)
    forEachTap(cc) { img, k, oh, ow, c, i, j, ih, iw in
        dw[((k * cc.c + c) * cc.r + i) * cc.s + j] +=
            Double(dy[((img * cc.k + k) * cc.oh + oh) * cc.ow + ow]) * Double(x[((img * cc.c + c) * cc.h + ih) * cc.w + iw])
    }
    var db = [Double](repeating: 0, count: cc.k)
    for img in 0..<cc.n {
        for k in 0..<cc.k {
            for o in 0..<(cc.oh * cc.ow) { db[k] += Double(dy[(img * cc.k + k) * cc.oh * cc.ow + o]) }
        }
    }
    return (dw, db)
}

/// col2im from its definition: every column element added to the pixel im2col read it from.
func naiveCol2im(_ cc: ConvCase, col: [Float]) -> [Double] {
    var dx = [Double](repeating: 0, count: cc.c * cc.h * cc.w)
    var idx = 0
    for c in 0..<cc.c {
        for i in 0..<cc.r {
            for j in 0..<cc.s {
                for oh in 0..<cc.oh {
                    for ow in 0..<cc.ow {
                        let ih = oh * cc.sh - cc.ph + i * cc.dh, iw = ow * cc.sw - cc.pw + j * cc.dw
                        if ih >= 0, ih < cc.h, iw >= 0, iw < cc.w { dx[(c * cc.h + ih) * cc.w + iw] += Double(col[idx]) }
                        idx += 1
                    }
                }
            }
        }
    }
    return dx
}

final class ConvBackwardTests: KernelTestCase {
    private let cases: [ConvCase] = [
        ConvCase(n: 2, c: 5, h: 7, w: 9, k: 6),                                    // 1×1 direct
        ConvCase(n: 2, c: 4, h: 9, w: 11, k: 3, sh: 2, sw: 2),                     // 1×1 stride 2
        ConvCase(n: 1, c: 3, h: 8, w: 8, k: 4, r: 3, s: 3, ph: 1, pw: 1, relu: true),
        ConvCase(n: 3, c: 2, h: 10, w: 7, k: 5, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1, bias: false),
        ConvCase(n: 1, c: 3, h: 23, w: 19, k: 4, r: 7, s: 7, sh: 2, sw: 2, ph: 3, pw: 3),  // stem
        ConvCase(n: 2, c: 3, h: 12, w: 10, k: 2, r: 5, s: 3, sh: 1, sw: 3, ph: 2, pw: 1, dh: 2, dw: 1),
        ConvCase(n: 1, c: 2, h: 9, w: 13, k: 3, r: 3, s: 2, sh: 3, sw: 2, ph: 0, pw: 2, dh: 1, dw: 3),
        ConvCase(n: 1, c: 1, h: 1, w: 1, k: 1, r: 3, s: 3, ph: 1, pw: 1),         // 1×1 image, all padding
        ConvCase(n: 1, c: 2, h: 5, w: 40, k: 3, r: 1, s: 3, pw: 1, dw: 2, bias: false),  // wide rows
        ConvCase(n: 2, c: 3, h: 6, w: 6, k: 2, r: 6, s: 6),                        // kernel = image
        ConvCase(n: 1, c: 2, h: 6, w: 45, k: 2, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1),  // wide, stride 2
        ConvCase(n: 2, c: 2, h: 5, w: 37, k: 3, r: 3, s: 3, ph: 1, pw: 1),         // wide, stride 1
    ]

    private func scratchCount(_ cc: ConvCase) -> Int {
        var p = cc.params
        return Int(ek_conv2d_scratch_size(&p))
    }

    private func backInput(_ cc: ConvCase, dy: [Float], weight: [Float], file: StaticString = #filePath,
                           line: UInt = #line) -> [Float] {
        var p = cc.params
        let need = scratchCount(cc)
        var scratch = [Float](repeating: .nan, count: max(need, 1))
        var dx = [Float](repeating: .nan, count: cc.n * cc.c * cc.h * cc.w)
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, dy, weight, &dx, &scratch, Int64(need)), EK_OK, "\(cc)",
                       file: file, line: line)
        return dx
    }

    /// Accumulates into (dweight, dbias) as the kernel does.
    private func backWeight(_ cc: ConvCase, x: [Float], dy: [Float], _ dweight: inout [Float], _ dbias: inout [Float]?,
                            file: StaticString = #filePath, line: UInt = #line) {
        var p = cc.params
        let need = scratchCount(cc)
        var scratch = [Float](repeating: .nan, count: max(need, 1))
        let st: ek_status
        if dbias != nil {
            st = ek_conv2d_back_weight_f32(&p, x, dy, &dweight, &dbias!, &scratch, Int64(need))
        } else {
            st = ek_conv2d_back_weight_f32(&p, x, dy, &dweight, nil, &scratch, Int64(need))
        }
        XCTAssertEqual(st, EK_OK, "\(cc)", file: file, line: line)
    }

    private func col2im(_ cc: ConvCase, _ col: [Float], ith: Int = 0, nth: Int = 1, into dx: inout [Float]) {
        var p = cc.params
        p.ith = Int32(ith); p.nth = Int32(nth)
        XCTAssertEqual(ek_col2im_f32(&p, col, &dx), EK_OK, "\(cc)")
    }

    // MARK: col2im

    /// Random geometries (as the im2col test): col2im equals its definition, is the adjoint of
    /// im2col (⟨col2im(c), x⟩ = ⟨c, im2col(x)⟩), and every ISA equals the scalar path bit
    /// for bit (the SIMD gather form adds each pixel's contributions in the scalar scatter's
    /// order).
    func testCol2imIsTheAdjointOfIm2colOnEveryISA() {
        var rng = SeededGenerator(seed: 200)
        var tested = 0
        for trial in 0..<150 {
            var cc = ConvCase()
            cc.c = rng.int(1...3)
            cc.r = rng.int(1...4); cc.s = rng.int(1...4)
            cc.sh = rng.int(1...3); cc.sw = trial % 3 == 0 ? 2 : rng.int(1...3)
            cc.dh = rng.int(1...2); cc.dw = rng.int(1...2)
            cc.ph = rng.int(0...3); cc.pw = rng.int(0...3)
            cc.h = rng.int(1...12); cc.w = rng.int(1...45)
            guard cc.h + 2 * cc.ph >= cc.dh * (cc.r - 1) + 1, cc.w + 2 * cc.pw >= cc.dw * (cc.s - 1) + 1 else { continue }
            tested += 1
            cc.n = rng.int(0...2)  // ignored by col2im
            let col = rng.spicyFloats(cc.c * cc.r * cc.s * cc.oh * cc.ow)
            let x = rng.floats(cc.c * cc.h * cc.w)
            compareWithScalar({
                var dx = [Float](repeating: .nan, count: cc.c * cc.h * cc.w)
                col2im(cc, col, into: &dx)
                return dx
            }, check: { ref, got, isa in assertBitEqual(got, ref, "\(cc) isa \(isa.rawValue)") })

            var dx = [Float](repeating: .nan, count: cc.c * cc.h * cc.w)
            col2im(cc, col, into: &dx)
            // At most R·S float additions per pixel: a few ulps of the largest term.
            assertGradient(dx, naiveCol2im(cc, col: col), rtol: 1e-6, atol: 1e-6, "\(cc)")
            var p = cc.params
            var colX = [Float](repeating: .nan, count: col.count)
            XCTAssertEqual(ek_im2col_f32(&p, x, &colX), EK_OK)
            let lhs = dotD(dx, x), rhs = dotD(col, colX)
            XCTAssertEqual(lhs, rhs, accuracy: 1e-6 * max(1, absDotD(col, colX)), "\(cc)")
        }
        XCTAssertGreaterThan(tested, 100)
    }

    func testCol2imSharesCoverAllChannels() {
        var rng = SeededGenerator(seed: 201)
        for cc in [ConvCase(c: 5, h: 11, w: 13, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1),
                   ConvCase(c: 7, h: 9, w: 20, r: 3, s: 3, ph: 1, pw: 1)] {
            let col = rng.floats(cc.c * 9 * cc.oh * cc.ow)
            var whole = [Float](repeating: .nan, count: cc.c * cc.h * cc.w)
            col2im(cc, col, into: &whole)
            for nth in [2, 3, 7, 40] {
                var parts = [Float](repeating: .nan, count: whole.count)
                for ith in 0..<nth { col2im(cc, col, ith: ith, nth: nth, into: &parts) }
                assertBitEqual(parts, whole, "\(cc) nth \(nth)")
            }
        }
    }

    /// Rows so wide that the SIMD paths' per-call plan would not fit (more than 1024 chunk ×
    /// tap entries) take the scalar path: still the definition, on every ISA.
    func testCol2imVeryWideRows() {
        var rng = SeededGenerator(seed: 206)
        for cc in [ConvCase(c: 1, h: 2, w: 3000, r: 1, s: 7, pw: 3), ConvCase(c: 2, h: 3, w: 1500, r: 2, s: 7, sw: 2, pw: 3)] {
            let col = rng.floats(cc.c * cc.r * cc.s * cc.oh * cc.ow)
            let expected = naiveCol2im(cc, col: col)
            compareWithScalar({
                var dx = [Float](repeating: .nan, count: cc.c * cc.h * cc.w)
                col2im(cc, col, into: &dx)
                return dx
            }, check: { ref, got, isa in assertBitEqual(got, ref, "\(cc) isa \(isa.rawValue)") })
            var dx = [Float](repeating: .nan, count: cc.c * cc.h * cc.w)
            col2im(cc, col, into: &dx)
            assertGradient(dx, expected, rtol: 1e-6, atol: 1e-6, "\(cc)")
        }
    }

    // MARK: Input gradient

    /// Against the definition, the adjoint identity ⟨dy, conv(x)⟩ = ⟨back_input(dy), x⟩ with
    /// the real forward kernel, and bit-identical results on every ISA (the sgemm is the same
    /// call, col2im is bit-exact).
    func testBackInputMatchesDefinitionAndAdjointOnEveryISA() {
        var rng = SeededGenerator(seed: 202)
        for cc in cases {
            var lin = cc
            lin.relu = false
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * cc.r * cc.s)
            let dy = rng.floats(cc.n * cc.k * cc.oh * cc.ow)
            let expected = naiveConvBackInput(cc, dy: dy, weight: weight)
            compareWithScalar({ backInput(cc, dy: dy, weight: weight) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "\(cc) isa \(isa.rawValue)") })
            let dx = backInput(cc, dy: dy, weight: weight)
            // A GEMM over the K output channels, then col2im adds at most R·S taps per element:
            // γ(K + R·S)·|W|ᵀ|dy|.
            let backScale = naiveConvBackInput(cc, dy: dy.map(abs), weight: weight.map(abs))
            let backRoundings = cc.k + cc.r * cc.s
            assertWithinBounds(dx, expected, backScale.map { roundingBound(backRoundings) * $0 }, "\(cc)")
            // ⟨dx, x⟩ errs by at most Σ|x|·(dx's bound), ⟨dy, y⟩ by Σ|dy|·γ(C·R·S)·|W||x| (the
            // forward's C·R·S products), and Double's two dot products by γ_Double(N)·Σ|terms|.
            let y = runConv(lin, x: x, weight: weight, bias: nil)
            let forwardScale = convD(lin, x: x.map { Double(abs($0)) }, weight: weight.map { Double(abs($0)) }, bias: nil)
            let xd = x.map { Double(abs($0)) }, dyd = dy.map { Double(abs($0)) }
            let bound = roundingBound(backRoundings) * dotD(backScale, xd) + roundingBound(cc.c * cc.r * cc.s) * dotD(dyd, forwardScale)
                + roundingBound(x.count + y.count, unit: doubleRoundoff) * (absDotD(dx, x) + absDotD(dy, y))
            XCTAssertEqual(dotD(dx, x), dotD(dy, y), accuracy: bound, "\(cc)")
        }
    }

    /// Central differences of L(x) = Σ dy·conv(x) on the Double forward (checked against
    /// ek_conv2d_f32 first) at up to 24 coordinates per case, corners included.
    private func checkBackInputAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 203)
        for cc in cases {
            var lin = cc
            lin.relu = false
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * cc.r * cc.s)
            let dy = rng.floats(cc.n * cc.k * cc.oh * cc.ow)
            let xd = x.map(Double.init), wd = weight.map(Double.init), dyd = dy.map(Double.init)
            let taps = cc.c * cc.r * cc.s
            let absW = wd.map(abs)
            // The float forward: C·R·S products per output, γ(C·R·S)·|W||x|.
            assertWithinBounds(runConv(lin, x: x, weight: weight, bias: nil), convD(lin, x: xd, weight: wd, bias: nil),
                               convD(lin, x: xd.map(abs), weight: absW, bias: nil).map { roundingBound(taps) * $0 },
                               "Double forward = kernel forward, \(cc)")
            // L is linear in x: the difference is exact but for Double's rounding of C·R·S
            // products per output and the sum over outputs, terms at most |dy|·|W|(|x| + h).
            let h = 1e-3
            let at = sampleIndices(x.count, limit: 24, &rng)
            let fd = centralDifferences(xd, at: at, h: h) { dotD(dyd, convD(lin, x: $0, weight: wd, bias: nil)) }
            let magnitude = dotD(dyd.map(abs), convD(lin, x: xd.map { abs($0) + h }, weight: absW, bias: nil))
            let fdError = centralDifferenceRounding(magnitude: magnitude, roundings: taps + dy.count + 1, h: h)
            // The kernel: γ(K + R·S)·|W|ᵀ|dy| (as above).
            let backScale = naiveConvBackInput(cc, dy: dy.map(abs), weight: weight.map(abs))
            let dx = backInput(cc, dy: dy, weight: weight)
            assertWithinBounds(pick(dx, at), fd, at.map { roundingBound(cc.k + cc.r * cc.s) * backScale[$0] + fdError },
                               size: dx.map { Double(abs($0)) }.max(), "\(cc)")
        }
    }

    func testBackInputAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkBackInputAgreesWithFiniteDifferences() } }
    func testBackInputAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkBackInputAgreesWithFiniteDifferences() } }
    func testBackInputAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkBackInputAgreesWithFiniteDifferences() } }

    // MARK: Weight and bias gradients

    /// Against the definition, accumulating onto what dweight / dbias held, on every ISA
    /// (bit-identical: the same sgemm and the ISA-independent summation order for dbias).
    func testBackWeightAccumulatesAndMatchesDefinition() {
        var rng = SeededGenerator(seed: 204)
        for cc in cases {
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let dy = rng.floats(cc.n * cc.k * cc.oh * cc.ow)
            let w0 = rng.floats(cc.k * cc.c * cc.r * cc.s), b0 = rng.floats(cc.k)
            let (ew, eb) = naiveConvBackWeight(cc, x: x, dy: dy)
            compareWithScalar({
                var dw = w0
                var db: [Float]? = b0
                backWeight(cc, x: x, dy: dy, &dw, &db)
                return dw + db!
            }, check: { ref, got, isa in assertBitEqual(got, ref, "\(cc) isa \(isa.rawValue)") })

            var dw = w0
            var db: [Float]? = b0
            backWeight(cc, x: x, dy: dy, &dw, &db)
            // Per image a GEMM over OH·OW positions added onto what dweight held, dbias one
            // addition per position: at most N·(OH·OW + 1) roundings of terms at most |w0| +
            // Σ|dy·x| (Σ|dy| for the bias).
            let (sw, sb) = naiveConvBackWeight(cc, x: x.map(abs), dy: dy.map(abs))
            let n = cc.n * (cc.oh * cc.ow + 1)
            assertWithinBounds(dw, zip(w0, ew).map { Double($0) + $1 },
                               zip(w0, sw).map { roundingBound(n) * (Double(abs($0)) + $1) }, "dweight \(cc)")
            // (dbias sums N·OH·OW values of both signs, which cancel to ~1/√count of their
            // magnitude: its bound is a larger share of it, 1e-2, still far below one term.)
            assertWithinBounds(db!, zip(b0, eb).map { Double($0) + $1 },
                               zip(b0, sb).map { roundingBound(n) * (Double(abs($0)) + $1) }, sensitivity: 1e-2, "dbias \(cc)")
            // A second call adds the gradient again (twice the roundings over twice the
            // gradient's magnitude); no dbias leaves the weights' result alone.
            var noBias: [Float]? = nil
            var dw2 = dw
            backWeight(cc, x: x, dy: dy, &dw2, &noBias)
            assertWithinBounds(dw2, zip(w0, ew).map { Double($0) + 2 * $1 },
                               zip(w0, sw).map { roundingBound(2 * n) * (Double(abs($0)) + 2 * $1) }, "twice \(cc)")
        }
    }

    /// Central differences of L(W, b) = Σ dy·conv(x; W, b) in Double with respect to the
    /// weights and the bias.
    private func checkBackWeightAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 205)
        for cc in cases {
            var lin = cc
            lin.relu = false
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * cc.r * cc.s), bias = rng.floats(cc.k)
            let dy = rng.floats(cc.n * cc.k * cc.oh * cc.ow)
            let xd = x.map(Double.init), wd = weight.map(Double.init), bd = bias.map(Double.init)
            let dyd = dy.map(Double.init)
            var dw = [Float](repeating: 0, count: weight.count)
            var db: [Float]? = [Float](repeating: 0, count: cc.k)
            backWeight(cc, x: x, dy: dy, &dw, &db)

            // L is linear in W and in b: Double's rounding of C·R·S products and the bias per
            // output and the sum over outputs, terms at most |dy|·((|W| + h)|x| + |b| + h).
            let h = 1e-3
            let magnitude = dotD(dyd.map(abs), convD(lin, x: xd.map(abs), weight: wd.map { abs($0) + h }, bias: bd.map { abs($0) + h }))
            let fdError = centralDifferenceRounding(magnitude: magnitude, roundings: cc.c * cc.r * cc.s + 1 + dy.count + 1, h: h)
            // The kernel: as in testBackWeightAccumulatesAndMatchesDefinition, onto zeros.
            let (sw, sb) = naiveConvBackWeight(cc, x: x.map(abs), dy: dy.map(abs))
            let n = cc.n * (cc.oh * cc.ow + 1)
            let at = sampleIndices(weight.count, limit: 24, &rng)
            let fdW = centralDifferences(wd, at: at, h: h) { dotD(dyd, convD(lin, x: xd, weight: $0, bias: bd)) }
            assertWithinBounds(pick(dw, at), fdW, at.map { roundingBound(n) * sw[$0] + fdError },
                               size: dw.map { Double(abs($0)) }.max(), "dweight \(cc)")
            let fdB = centralDifferences(bd, at: Array(bd.indices), h: h) { dotD(dyd, convD(lin, x: xd, weight: wd, bias: $0)) }
            assertWithinBounds(db!, fdB, sb.map { roundingBound(n) * $0 + fdError }, sensitivity: 1e-2, "dbias \(cc)")
        }
    }

    func testBackWeightAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkBackWeightAgreesWithFiniteDifferences() } }
    func testBackWeightAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkBackWeightAgreesWithFiniteDifferences() } }
    func testBackWeightAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkBackWeightAgreesWithFiniteDifferences() } }

    // MARK: Arguments

    func testBackRejectsBadArguments() {
        let cc = ConvCase(n: 1, c: 2, h: 6, w: 6, k: 2, r: 3, s: 3, ph: 1, pw: 1)
        let x = [Float](repeating: 1, count: 72), w = [Float](repeating: 1, count: 36)
        let dy = [Float](repeating: 1, count: 72)
        var dx = [Float](repeating: 0, count: 72), dw = [Float](repeating: 0, count: 36), db = [Float](repeating: 0, count: 2)
        let need = 2 * 9 * 36
        var scratch = [Float](repeating: 0, count: need)
        var p = cc.params
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, dy, w, &dx, &scratch, Int64(need)), EK_OK)
        XCTAssertEqual(ek_conv2d_back_weight_f32(&p, x, dy, &dw, &db, &scratch, Int64(need)), EK_OK)
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, dy, w, &dx, &scratch, Int64(need - 1)), EK_ERR_SCRATCH_TOO_SMALL)
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, dy, w, &dx, nil, Int64(need)), EK_ERR_SCRATCH_TOO_SMALL)
        XCTAssertEqual(ek_conv2d_back_weight_f32(&p, x, dy, &dw, &db, &scratch, Int64(need - 1)), EK_ERR_SCRATCH_TOO_SMALL)
        XCTAssertEqual(ek_conv2d_back_weight_f32(&p, x, dy, &dw, &db, nil, 0), EK_ERR_SCRATCH_TOO_SMALL)
        XCTAssertEqual(ek_conv2d_back_input_f32(nil, dy, w, &dx, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, nil, w, &dx, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, dy, nil, &dx, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_input_f32(&p, dy, w, nil, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_weight_f32(nil, x, dy, &dw, &db, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_weight_f32(&p, nil, dy, &dw, &db, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_weight_f32(&p, x, nil, &dw, &db, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_weight_f32(&p, x, dy, nil, &db, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_col2im_f32(nil, x, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_col2im_f32(&p, nil, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_col2im_f32(&p, x, nil), EK_ERR_INVALID_ARGUMENT)

        let mutations: [(inout ek_conv2d_params) -> Void] = [
            { $0.n = 0 }, { $0.c = -1 }, { $0.h = 0 }, { $0.k = 0 }, { $0.r = 0 }, { $0.s = -2 },
            { $0.stride_h = 0 }, { $0.stride_w = -1 }, { $0.pad_h = -1 }, { $0.dilation_w = 0 },
            { $0.activation = ek_activation(rawValue: 7) }, { $0.r = 20 },
        ]
        let before = (dx, dw, db)
        for (i, mutate) in mutations.enumerated() {
            var bad = cc.params
            mutate(&bad)
            XCTAssertEqual(ek_conv2d_back_input_f32(&bad, dy, w, &dx, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT, "mutation \(i)")
            XCTAssertEqual(ek_conv2d_back_weight_f32(&bad, x, dy, &dw, &db, &scratch, Int64(need)), EK_ERR_INVALID_ARGUMENT, "mutation \(i)")
            // col2im works on one image: n is ignored.
            XCTAssertEqual(ek_col2im_f32(&bad, scratch, &dx), i == 0 ? EK_OK : EK_ERR_INVALID_ARGUMENT, "mutation \(i)")
            if i == 0 { dx = before.0 }
        }
        XCTAssertEqual(dx, before.0, "a rejected call writes nothing")
        XCTAssertEqual(dw, before.1)
        XCTAssertEqual(db, before.2)

        var direct = ConvCase(n: 1, c: 2, h: 6, w: 6, k: 2).params
        XCTAssertEqual(ek_conv2d_back_input_f32(&direct, dy, w, &dx, nil, 0), EK_OK, "1×1 direct needs no scratch")
        XCTAssertEqual(ek_conv2d_back_weight_f32(&direct, x, dy, &dw, nil, nil, 0), EK_OK)
        var badShare = cc.params
        badShare.ith = 2; badShare.nth = 2
        XCTAssertEqual(ek_col2im_f32(&badShare, scratch, &dx), EK_ERR_INVALID_ARGUMENT)
        badShare.ith = 0; badShare.nth = 0
        XCTAssertEqual(ek_col2im_f32(&badShare, scratch, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_conv2d_back_input_f32(&badShare, dy, w, &dx, &scratch, Int64(need)), EK_OK, "ignores ith/nth")
        XCTAssertEqual(ek_conv2d_back_weight_f32(&badShare, x, dy, &dw, &db, &scratch, Int64(need)), EK_OK, "ignores ith/nth")
    }
}
