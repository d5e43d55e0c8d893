import CKernels
import TestSupport
import XCTest

/// Average pool in Double with PyTorch's divisor rules (the forward the finite differences
/// differentiate; checked against ek_avgpool2d_f32 before use).
func avgPoolD(_ pc: PoolCase, _ x: [Double]) -> [Double] {
    var y = [Double]()
    for plane in 0..<(pc.n * pc.c) {
        for oh in 0..<pc.oh {
            for ow in 0..<pc.ow {
                let h0 = oh * pc.sh - pc.ph, w0 = ow * pc.sw - pc.pw
                let h1 = min(h0 + pc.kh, pc.h + pc.ph), w1 = min(w0 + pc.kw, pc.w + pc.pw)
                let (rh0, rw0, rh1, rw1) = (max(h0, 0), max(w0, 0), min(h1, pc.h), min(w1, pc.w))
                guard rh0 < rh1, rw0 < rw1 else { y.append(0); continue }
                var sum = 0.0
                for ih in rh0..<rh1 { for iw in rw0..<rw1 { sum += x[plane * pc.h * pc.w + ih * pc.w + iw] } }
                y.append(sum / Double(pc.includePad ? (h1 - h0) * (w1 - w0) : (rh1 - rh0) * (rw1 - rw0)))
            }
        }
    }
    return y
}

/// Max pool in Double (the taps of naiveMaxPool; padding-only windows give 0 so the loss
/// stays finite, and have no gradient).
func maxPoolD(_ pc: PoolCase, _ x: [Double]) -> [Double] {
    var y = [Double]()
    for plane in 0..<(pc.n * pc.c) {
        for oh in 0..<pc.oh {
            for ow in 0..<pc.ow {
                var best = -Double.infinity
                for i in 0..<pc.kh {
                    let ih = oh * pc.sh - pc.ph + i * pc.dh
                    guard ih >= 0, ih < pc.h else { continue }
                    for j in 0..<pc.kw {
                        let iw = ow * pc.sw - pc.pw + j * pc.dw
                        guard iw >= 0, iw < pc.w else { continue }
                        best = max(best, x[plane * pc.h * pc.w + ih * pc.w + iw])
                    }
                }
                y.append(best == -.infinity ? 0 : best)
            }
        }
    }
    return y
}

/// The average pool's backward from its definition: dy / divisor to every real element.
func naiveAvgPoolBack(_ pc: PoolCase, _ dy: [Float]) -> [Double] {
    var dx = [Double](repeating: 0, count: pc.n * pc.c * pc.h * pc.w)
    var o = 0
    for plane in 0..<(pc.n * pc.c) {
        for oh in 0..<pc.oh {
            for ow in 0..<pc.ow {
                defer { o += 1 }
                let h0 = oh * pc.sh - pc.ph, w0 = ow * pc.sw - pc.pw
                let h1 = min(h0 + pc.kh, pc.h + pc.ph), w1 = min(w0 + pc.kw, pc.w + pc.pw)
                let (rh0, rw0, rh1, rw1) = (max(h0, 0), max(w0, 0), min(h1, pc.h), min(w1, pc.w))
                guard rh0 < rh1, rw0 < rw1 else { continue }
                let divisor = Double(pc.includePad ? (h1 - h0) * (w1 - w0) : (rh1 - rh0) * (rw1 - rw0))
                for ih in rh0..<rh1 { for iw in rw0..<rw1 { dx[plane * pc.h * pc.w + ih * pc.w + iw] += Double(dy[o]) / divisor } }
            }
        }
    }
    return dx
}

/// Distinct values 0.01 apart in random order: no ties, and a perturbation of ±1e-3 never
/// changes which element is the maximum.
func distinctFloats(_ count: Int, _ rng: inout SeededGenerator) -> [Float] {
    var values = (0..<count).map { Float($0) * 0.01 - Float(count) * 0.005 }
    values.shuffle(using: &rng)
    return values
}

final class PoolBackwardTests: KernelTestCase {
    private func randomCase(_ rng: inout SeededGenerator, dilation: Bool) -> PoolCase? {
        var pc = PoolCase()
        pc.n = rng.int(1...2); pc.c = rng.int(1...2)
        pc.kh = rng.int(1...4); pc.kw = rng.int(1...4)
        pc.sh = rng.int(1...3); pc.sw = rng.int(1...3)
        pc.ph = rng.int(0...(pc.kh / 2)); pc.pw = rng.int(0...(pc.kw / 2))
        if dilation { pc.dh = rng.int(1...2); pc.dw = rng.int(1...3) }
        pc.h = rng.int(1...9); pc.w = rng.int(1...45)
        pc.ceil = rng.bool(); pc.includePad = rng.bool()
        return pc.oh >= 1 && pc.ow >= 1 ? pc : nil
    }

    /// Hand-picked cases on top of the random ones: the SIMD strides with long rows, ceil_mode
    /// windows clipped at the border both ways, non-square kernels, overlapping windows.
    private let fixedCases: [PoolCase] = [
        PoolCase(n: 2, c: 3, h: 7, w: 45, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, ceil: false, includePad: true),
        PoolCase(n: 1, c: 2, h: 9, w: 40, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true, includePad: false),
        PoolCase(n: 1, c: 2, h: 8, w: 34, kh: 2, kw: 2, sh: 2, sw: 2),
        PoolCase(n: 2, c: 1, h: 6, w: 6, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true, includePad: true),
        PoolCase(n: 1, c: 1, h: 5, w: 50, kh: 3, kw: 2, sh: 3, sw: 1, ph: 1, pw: 1, ceil: true, includePad: true),
        PoolCase(n: 1, c: 3, h: 11, w: 19, kh: 4, kw: 3, sh: 1, sw: 2, ph: 2, pw: 0, ceil: false, includePad: false),
    ]

    private func maxBack(_ pc: PoolCase, _ dy: [Float], _ argmax: [Int32], ith: Int = 0, nth: Int = 1,
                         into dx: inout [Float]) {
        var p = pc.params(ith: ith, nth: nth)
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, argmax, &dx), EK_OK, "\(pc)")
    }
    private func maxBack(_ pc: PoolCase, _ dy: [Float], _ argmax: [Int32]) -> [Float] {
        var dx = [Float](repeating: .nan, count: pc.n * pc.c * pc.h * pc.w)
        maxBack(pc, dy, argmax, into: &dx)
        return dx
    }
    private func avgBack(_ pc: PoolCase, _ dy: [Float], ith: Int = 0, nth: Int = 1, into dx: inout [Float]) {
        var p = pc.params(ith: ith, nth: nth)
        XCTAssertEqual(ek_avgpool2d_back_f32(&p, dy, &dx), EK_OK, "\(pc)")
    }
    private func avgBack(_ pc: PoolCase, _ dy: [Float]) -> [Float] {
        var dx = [Float](repeating: .nan, count: pc.n * pc.c * pc.h * pc.w)
        avgBack(pc, dy, into: &dx)
        return dx
    }
    private func maxForward(_ pc: PoolCase, _ x: [Float]) -> ([Float], [Int32]) {
        var p = pc.params()
        var y = [Float](repeating: .nan, count: pc.n * pc.c * pc.oh * pc.ow)
        var idx = [Int32](repeating: -7, count: y.count)
        XCTAssertEqual(ek_maxpool2d_f32(&p, x, &y, &idx), EK_OK, "\(pc)")
        return (y, idx)
    }
    private func avgForward(_ pc: PoolCase, _ x: [Float]) -> [Float] {
        var p = pc.params()
        var y = [Float](repeating: .nan, count: pc.n * pc.c * pc.oh * pc.ow)
        XCTAssertEqual(ek_avgpool2d_f32(&p, x, &y), EK_OK, "\(pc)")
        return y
    }

    // MARK: Max pool

    /// dy routed through the forward's argmax: against the definition (dy added at the
    /// maximum of each window, overlaps summing), bit-identical on every ISA, and the
    /// adjoint identity ⟨dy, maxpool(x)⟩ = ⟨dx, x⟩ over the windows that hold an element.
    func testMaxPoolBackRoutesThroughArgmax() {
        var rng = SeededGenerator(seed: 300)
        var tested = 0
        while tested < 120 {
            guard let pc = randomCase(&rng, dilation: true) else { continue }
            tested += 1
            let x = distinctFloats(pc.n * pc.c * pc.h * pc.w, &rng)
            let (y, argmax) = maxForward(pc, x)
            let dy = rng.spicyFloats(y.count)
            var expected = [Double](repeating: 0, count: x.count)
            for o in argmax.indices where argmax[o] >= 0 {
                let plane = o / (pc.oh * pc.ow)
                expected[plane * pc.h * pc.w + Int(argmax[o])] += Double(dy[o])
            }
            compareWithScalar({ maxBack(pc, dy, argmax) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "\(pc) isa \(isa.rawValue)") })
            let dx = maxBack(pc, dy, argmax)
            assertGradient(dx, expected, rtol: 1e-6, atol: 1e-6, "\(pc)")
            let live = argmax.indices.filter { argmax[$0] >= 0 }
            XCTAssertEqual(dotD(dx, x), dotD(pick(dy, live), pick(y, live)), accuracy: 1e-5 * max(1, absDotD(dy, dy)), "\(pc)")
        }
    }

    /// Central differences of L(x) = Σ w·maxpool(x) in Double; distinct inputs 0.01 apart
    /// and h = 1e-3 keep every maximum where it is, so the difference is exact but for
    /// Double's rounding of the sum over outputs.
    private func checkMaxPoolBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 301)
        var cases = fixedCases
        while cases.count < 30 { if let pc = randomCase(&rng, dilation: true) { cases.append(pc) } }
        for pc in cases {
            let x = distinctFloats(pc.n * pc.c * pc.h * pc.w, &rng)
            let (y, argmax) = maxForward(pc, x)
            let xd = x.map(Double.init)
            // The Double forward is the kernel's (padding-only windows aside, which give no gradient).
            let live = argmax.indices.filter { argmax[$0] >= 0 }
            let yd = maxPoolD(pc, xd)
            assertGradient(pick(y, live), live.map { yd[$0] }, rtol: 0, atol: 0, "forward \(pc)")
            let h = 1e-3
            let w = rng.floats(y.count).map(Double.init)
            let at = sampleIndices(x.count, limit: 40, &rng)
            let fd = centralDifferences(xd, at: at, h: h) { dotD(w, maxPoolD(pc, $0)) }
            let fdError = centralDifferenceRounding(magnitude: zip(w, yd).reduce(0) { $0 + abs($1.0) * (abs($1.1) + h) },
                                                    roundings: y.count + 1, h: h)
            // The kernel adds the dy of every window whose maximum an element is: at most
            // kh·kw windows, relative to the sum of their |dy|.
            var scale = [Double](repeating: 0, count: x.count)
            for o in argmax.indices where argmax[o] >= 0 { scale[o / (pc.oh * pc.ow) * pc.h * pc.w + Int(argmax[o])] += abs(w[o]) }
            let dx = maxBack(pc, w.map { Float($0) }, argmax)
            assertWithinBounds(pick(dx, at), fd, at.map { roundingBound(pc.kh * pc.kw) * scale[$0] + fdError },
                               size: dx.map { Double(abs($0)) }.max(), "\(pc)")
        }
    }

    func testMaxPoolBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkMaxPoolBackAgreesWithFiniteDifferences() } }
    func testMaxPoolBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkMaxPoolBackAgreesWithFiniteDifferences() } }
    func testMaxPoolBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkMaxPoolBackAgreesWithFiniteDifferences() } }

    // MARK: Average pool

    /// Against the definition (PyTorch's divisors, count_include_pad and ceil_mode), the
    /// adjoint identity with the real forward, and bit-identical results on every ISA.
    func testAvgPoolBackMatchesDefinitionAndAdjointOnEveryISA() {
        var rng = SeededGenerator(seed: 302)
        var cases = fixedCases
        while cases.count < 160 { if let pc = randomCase(&rng, dilation: false) { cases.append(pc) } }
        for pc in cases {
            let x = rng.floats(pc.n * pc.c * pc.h * pc.w)
            let dy = rng.spicyFloats(pc.n * pc.c * pc.oh * pc.ow)
            compareWithScalar({ avgBack(pc, dy) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "\(pc) isa \(isa.rawValue)") })
            let dx = avgBack(pc, dy)
            // At most kh·kw float additions of float quotients per element.
            assertGradient(dx, naiveAvgPoolBack(pc, dy), rtol: 1e-6, atol: 1e-6, "\(pc)")
            let y = avgForward(pc, x)
            XCTAssertEqual(dotD(dx, x), dotD(dy, y), accuracy: 1e-5 * max(1, absDotD(dy, y)), "\(pc)")
        }
    }

    /// Central differences of L(x) = Σ w·avgpool(x) on the Double forward, itself checked
    /// against ek_avgpool2d_f32 (so the divisors differentiated are the kernel's).
    private func checkAvgPoolBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 303)
        var cases = fixedCases
        while cases.count < 40 { if let pc = randomCase(&rng, dilation: false) { cases.append(pc) } }
        for pc in cases {
            let x = rng.floats(pc.n * pc.c * pc.h * pc.w)
            let xd = x.map(Double.init)
            // The float forward: at most kh·kw additions and a division, γ(kh·kw + 1)·avg(|x|).
            let taps = pc.kh * pc.kw
            assertWithinBounds(avgForward(pc, x), avgPoolD(pc, xd), avgPoolD(pc, xd.map(abs)).map { roundingBound(taps + 1) * $0 },
                               "forward \(pc)")
            // L is linear: Double's rounding of the windows' sums and divisions and the sum over
            // outputs, terms at most |w|·avg(|x| + h).
            let h = 1e-3
            let w = rng.floats(pc.n * pc.c * pc.oh * pc.ow).map(Double.init)
            let at = sampleIndices(x.count, limit: 40, &rng)
            let fd = centralDifferences(xd, at: at, h: h) { dotD(w, avgPoolD(pc, $0)) }
            let fdError = centralDifferenceRounding(magnitude: dotD(w.map(abs), avgPoolD(pc, xd.map { abs($0) + h })),
                                                    roundings: taps + 1 + w.count + 1, h: h)
            // The kernel: dy/divisor (1 rounding) added over at most kh·kw windows.
            let scale = naiveAvgPoolBack(pc, w.map { Float(abs($0)) })
            let dx = avgBack(pc, w.map { Float($0) })
            assertWithinBounds(pick(dx, at), fd, at.map { roundingBound(taps + 1) * scale[$0] + fdError },
                               size: dx.map { Double(abs($0)) }.max(), "\(pc)")
        }
    }

    func testAvgPoolBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkAvgPoolBackAgreesWithFiniteDifferences() } }
    func testAvgPoolBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkAvgPoolBackAgreesWithFiniteDifferences() } }
    func testAvgPoolBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkAvgPoolBackAgreesWithFiniteDifferences() } }

    /// Planes the SIMD paths hand to the scalar path: G rows too wide for the stack ring
    /// (G then computed per tap), windows taller than one batch of row taps, a plan too wide
    /// for its table. Still the definition, and the same bits on every ISA.
    func testAvgPoolBackFallbacks() {
        var rng = SeededGenerator(seed: 305)
        let cases = [
            PoolCase(n: 1, c: 1, h: 3, w: 2000, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, ceil: false, includePad: false),
            PoolCase(n: 1, c: 2, h: 70, w: 5, kh: 66, kw: 2, sh: 1, sw: 1, ph: 20, pw: 1, ceil: true, includePad: true),
            PoolCase(n: 1, c: 1, h: 2, w: 1300, kh: 1, kw: 7, sh: 1, sw: 1, ph: 0, pw: 3),  // ring fits, plan does not
        ]
        for pc in cases {
            let dy = rng.floats(pc.n * pc.c * pc.oh * pc.ow)
            compareWithScalar({ avgBack(pc, dy) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "\(pc) isa \(isa.rawValue)") })
            assertGradient(avgBack(pc, dy), naiveAvgPoolBack(pc, dy), rtol: 1e-6, atol: 1e-6, "\(pc)")
        }
    }

    /// The divisors by hand: the corner/edge/centre windows of a padded 3×3 and the ceil_mode
    /// window clipped to the padded border (count_include_pad counts 2 rows, not 3).
    func testAvgPoolBackDivisorsByHand() {
        let ones = [Float](repeating: 1, count: 4)
        var pc = PoolCase(h: 3, w: 3, kh: 2, kw: 2, sh: 2, sw: 2, ph: 1, pw: 1)
        pc.includePad = true
        // Windows: {0}, {1,2}, {3,6}, {4,5,7,8}, each dy = 1 over 4 padded taps.
        assertClose(avgBack(pc, ones), [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25], rtol: 0, atol: 0)
        pc.includePad = false
        assertClose(avgBack(pc, ones), [1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25], rtol: 0, atol: 0)
        var ceilCase = PoolCase(h: 6, w: 1, kh: 3, kw: 1, sh: 2, sw: 1, ph: 1, pw: 0, ceil: true, includePad: true)
        // Windows over rows [-1,2), [1,4), [3,6), [5,7): divisors 3, 3, 3, 2.
        let third: Float = 1.0 / 3
        assertClose(avgBack(ceilCase, [1, 1, 1, 1]), [third, 2 * third, third, 2 * third, third, third + 0.5],
                    rtol: 1e-7, atol: 0)
        ceilCase.includePad = false
        // Real rows: {0,1}, {1,2,3}, {3,4,5}, {5}: divisors 2, 3, 3, 1.
        assertClose(avgBack(ceilCase, [1, 1, 1, 1]), [0.5, 0.5 + third, third, 2 * third, third, third + 1],
                    rtol: 1e-7, atol: 0)
    }

    // MARK: Shares and arguments

    func testBackSharesCoverAllPlanes() {
        var rng = SeededGenerator(seed: 304)
        let pc = PoolCase(n: 2, c: 5, h: 9, w: 21, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1)
        let x = distinctFloats(pc.n * pc.c * pc.h * pc.w, &rng)
        let (y, argmax) = maxForward(pc, x)
        let dy = rng.floats(y.count)
        let wholeMax = maxBack(pc, dy, argmax), wholeAvg = avgBack(pc, dy)
        for nth in [2, 3, 10, 11] {
            var m = [Float](repeating: .nan, count: x.count), a = m
            for ith in 0..<nth {
                maxBack(pc, dy, argmax, ith: ith, nth: nth, into: &m)
                avgBack(pc, dy, ith: ith, nth: nth, into: &a)
            }
            assertBitEqual(m, wholeMax, "max nth \(nth)")
            assertBitEqual(a, wholeAvg, "avg nth \(nth)")
        }
    }

    func testBackRejectsBadArguments() {
        let dy = [Float](repeating: 1, count: 4)
        let argmax: [Int32] = [0, 2, 8, 10]
        var dx = [Float](repeating: 7, count: 16)
        let good = PoolCase(h: 4, w: 4, kh: 2, kw: 2, sh: 2, sw: 2)
        var p = good.params()
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, argmax, &dx), EK_OK)
        XCTAssertEqual(ek_avgpool2d_back_f32(&p, dy, &dx), EK_OK)
        dx = [Float](repeating: 7, count: 16)
        XCTAssertEqual(ek_maxpool2d_back_f32(nil, dy, argmax, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, nil, argmax, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, nil, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, argmax, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_avgpool2d_back_f32(nil, dy, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_avgpool2d_back_f32(&p, nil, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_avgpool2d_back_f32(&p, dy, nil), EK_ERR_INVALID_ARGUMENT)
        // An index outside the plane is refused before anything is written; -1 routes nowhere.
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, [0, 2, 8, 16], &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, [0, -2, 8, 10], &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(dx, [Float](repeating: 7, count: 16), "a rejected call writes nothing")
        XCTAssertEqual(ek_maxpool2d_back_f32(&p, dy, [0, -1, -1, 15], &dx), EK_OK)
        XCTAssertEqual(dx, [1] + [Float](repeating: 0, count: 14) + [1])
        var dilated = PoolCase(h: 4, w: 4, kh: 2, kw: 2, dh: 2).params()
        XCTAssertEqual(ek_avgpool2d_back_f32(&dilated, dy, &dx), EK_ERR_INVALID_ARGUMENT, "average pool has no dilation")
        for mutate in [{ (q: inout ek_pool2d_params) in q.n = 0 }, { $0.c = 0 }, { $0.kh = 0 }, { $0.stride_w = 0 },
                       { $0.pad_h = -1 }, { $0.pad_w = 2 }, { $0.ith = 1 }, { $0.nth = 0 }, { $0.ith = -1 }] {
            var bad = good.params()
            mutate(&bad)
            XCTAssertEqual(ek_maxpool2d_back_f32(&bad, dy, argmax, &dx), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(ek_avgpool2d_back_f32(&bad, dy, &dx), EK_ERR_INVALID_ARGUMENT)
        }
    }
}
