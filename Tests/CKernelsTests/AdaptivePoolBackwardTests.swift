import CKernels
import TestSupport
import XCTest

final class AdaptivePoolBackwardTests: KernelTestCase {
    private struct Shape: CustomStringConvertible {
        var n: Int, c: Int, h: Int, w: Int, oh: Int, ow: Int
        func params(ith: Int = 0, nth: Int = 1) -> ek_adaptive_pool2d_params {
            ek_adaptive_pool2d_params(n: Int64(n), c: Int64(c), h: Int64(h), w: Int64(w), out_h: Int64(oh),
                                      out_w: Int64(ow), ith: Int32(ith), nth: Int32(nth))
        }
        var inCount: Int { n * c * h * w }
        var outCount: Int { n * c * oh * ow }
        var description: String { "n\(n) c\(c) \(h)x\(w) -> \(oh)x\(ow)" }
    }

    /// Divisible, non-divisible (overlapping bins), up-sampling (bins repeat elements), the
    /// global pool of ResNet's head, and a plane larger than the SIMD width.
    private let shapes: [Shape] = [
        Shape(n: 2, c: 3, h: 7, w: 7, oh: 1, ow: 1),
        Shape(n: 1, c: 2, h: 9, w: 37, oh: 1, ow: 1),
        Shape(n: 2, c: 2, h: 8, w: 6, oh: 4, ow: 3),
        Shape(n: 1, c: 3, h: 7, w: 5, oh: 3, ow: 2),
        Shape(n: 1, c: 2, h: 3, w: 4, oh: 5, ow: 7),
        Shape(n: 2, c: 1, h: 10, w: 13, oh: 7, ow: 7),
    ]

    /// PyTorch's bins: start = floor(i*H/OH), end = ceil((i+1)*H/OH).
    private func bins(_ i: Int, _ size: Int, _ out: Int) -> Range<Int> {
        (i * size / out)..<(((i + 1) * size + out - 1) / out)
    }

    private func avgD(_ s: Shape, _ x: [Double]) -> [Double] {
        var y = [Double]()
        for plane in 0..<(s.n * s.c) {
            for i in 0..<s.oh {
                for j in 0..<s.ow {
                    var sum = 0.0
                    for ih in bins(i, s.h, s.oh) { for iw in bins(j, s.w, s.ow) { sum += x[plane * s.h * s.w + ih * s.w + iw] } }
                    y.append(sum / Double(bins(i, s.h, s.oh).count * bins(j, s.w, s.ow).count))
                }
            }
        }
        return y
    }

    private func maxD(_ s: Shape, _ x: [Double]) -> [Double] {
        var y = [Double]()
        for plane in 0..<(s.n * s.c) {
            for i in 0..<s.oh {
                for j in 0..<s.ow {
                    var best = -Double.infinity
                    for ih in bins(i, s.h, s.oh) { for iw in bins(j, s.w, s.ow) { best = max(best, x[plane * s.h * s.w + ih * s.w + iw]) } }
                    y.append(best)
                }
            }
        }
        return y
    }

    private func forward(_ s: Shape, _ x: [Float]) -> (avg: [Float], max: [Float], argmax: [Int32]) {
        var p = s.params()
        var avg = [Float](repeating: .nan, count: s.outCount), mx = avg
        var arg = [Int32](repeating: -9, count: s.outCount)
        XCTAssertEqual(ek_adaptive_avgpool2d_f32(&p, x, &avg), EK_OK)
        XCTAssertEqual(ek_adaptive_maxpool2d_f32(&p, x, &mx, &arg), EK_OK)
        return (avg, mx, arg)
    }

    private func avgBack(_ s: Shape, _ dy: [Float], ith: Int = 0, nth: Int = 1, into dx: inout [Float]) {
        var p = s.params(ith: ith, nth: nth)
        XCTAssertEqual(ek_adaptive_avgpool2d_back_f32(&p, dy, &dx), EK_OK, "\(s)")
    }
    private func avgBack(_ s: Shape, _ dy: [Float]) -> [Float] {
        var dx = [Float](repeating: .nan, count: s.inCount)
        avgBack(s, dy, into: &dx)
        return dx
    }
    private func maxBack(_ s: Shape, _ dy: [Float], _ argmax: [Int32], ith: Int = 0, nth: Int = 1, into dx: inout [Float]) {
        var p = s.params(ith: ith, nth: nth)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, dy, argmax, &dx), EK_OK, "\(s)")
    }
    private func maxBack(_ s: Shape, _ dy: [Float], _ argmax: [Int32]) -> [Float] {
        var dx = [Float](repeating: .nan, count: s.inCount)
        maxBack(s, dy, argmax, into: &dx)
        return dx
    }

    /// Against the definition (dy / bin size over each bin, overlaps summing), the adjoint
    /// identity with the real forward, and the same bits on every ISA.
    func testAvgBackMatchesDefinitionAndAdjoint() {
        var rng = SeededGenerator(seed: 400)
        for s in shapes {
            let x = rng.floats(s.inCount), dy = rng.floats(s.outCount)
            var expected = [Double](repeating: 0, count: s.inCount)
            var o = 0
            for plane in 0..<(s.n * s.c) {
                for i in 0..<s.oh {
                    for j in 0..<s.ow {
                        let (rows, cols) = (bins(i, s.h, s.oh), bins(j, s.w, s.ow))
                        for ih in rows { for iw in cols { expected[plane * s.h * s.w + ih * s.w + iw] += Double(dy[o]) / Double(rows.count * cols.count) } }
                        o += 1
                    }
                }
            }
            compareWithScalar({ avgBack(s, dy) }, check: { ref, got, isa in assertBitEqual(got, ref, "\(s) isa \(isa.rawValue)") })
            let dx = avgBack(s, dy)
            assertGradient(dx, expected, rtol: 1e-6, atol: 1e-7, "\(s)")
            XCTAssertEqual(dotD(dx, x), dotD(dy, forward(s, x).avg), accuracy: 1e-5 * max(1, absDotD(dy, forward(s, x).avg)), "\(s)")
        }
    }

    /// Central differences of Σ w·pool(x) on Double forwards checked against the kernels;
    /// the max pool input has distinct values 0.01 apart and h = 1e-3 (no maximum moves).
    private func checkBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 401)
        for s in shapes {
            let x = distinctFloats(s.inCount, &rng)
            let xd = x.map(Double.init)
            let (avg, mx, argmax) = forward(s, x)
            // The float average: a bin's additions and a division, γ(bin + 1)·avg(|x|).
            let bin = (0..<s.oh).map { bins($0, s.h, s.oh).count }.max()! * (0..<s.ow).map { bins($0, s.w, s.ow).count }.max()!
            // (A global average of values of both signs cancels to ~1/√count of their
            // magnitude, so its bound is a larger share of it: 1e-2.)
            assertWithinBounds(avg, avgD(s, xd), avgD(s, xd.map(abs)).map { roundingBound(bin + 1) * $0 }, sensitivity: 1e-2,
                               "avg forward \(s)")
            assertGradient(mx, maxD(s, xd), rtol: 0, atol: 0, "max forward \(s)")
            let h = 1e-3
            let w = rng.floats(s.outCount).map(Double.init), wf = w.map { Float($0) }
            let at = sampleIndices(s.inCount, limit: 40, &rng)
            // Both are linear (the max without a kink in the segment): Double's rounding of a
            // bin's sum and division and the sum over outputs, terms at most |w|·pool(|x| + h).
            let roundings = bin + 1 + w.count + 1
            let shifted = xd.map { abs($0) + h }
            // The kernels add an element's share of every bin holding it (at most `overlap`
            // bins), the average's share divided once.
            var overlap = [Int](repeating: 0, count: s.h * s.w)
            for i in 0..<s.oh { for j in 0..<s.ow { for ih in bins(i, s.h, s.oh) { for iw in bins(j, s.w, s.ow) { overlap[ih * s.w + iw] += 1 } } } }
            let n = overlap.max()! + 1
            let fdAvg = centralDifferences(xd, at: at, h: h) { dotD(w, avgD(s, $0)) }
            let avgError = centralDifferenceRounding(magnitude: dotD(w.map(abs), avgD(s, shifted)), roundings: roundings, h: h)
            let avgScale = avgBack(s, wf.map(abs))
            let avgDx = avgBack(s, wf), maxDx = maxBack(s, wf, argmax)
            assertWithinBounds(pick(avgDx, at), fdAvg, at.map { roundingBound(n) * Double(avgScale[$0]) + avgError },
                               size: avgDx.map { Double(abs($0)) }.max(), "avg \(s)")
            let fdMax = centralDifferences(xd, at: at, h: h) { dotD(w, maxD(s, $0)) }
            let maxError = centralDifferenceRounding(magnitude: dotD(w.map(abs), maxD(s, shifted)), roundings: roundings, h: h)
            let maxScale = maxBack(s, wf.map(abs), argmax)
            assertWithinBounds(pick(maxDx, at), fdMax, at.map { roundingBound(n) * Double(maxScale[$0]) + maxError },
                               size: maxDx.map { Double(abs($0)) }.max(), "max \(s)")
        }
    }

    func testBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkBackAgreesWithFiniteDifferences() } }
    func testBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkBackAgreesWithFiniteDifferences() } }
    func testBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkBackAgreesWithFiniteDifferences() } }

    func testMaxBackRoutesThroughArgmaxOnEveryISA() {
        var rng = SeededGenerator(seed: 402)
        for s in shapes {
            let x = rng.spicyFloats(s.inCount)  // ties included: the forward's first maximum
            let (_, _, argmax) = forward(s, x)
            let dy = rng.floats(s.outCount)
            var expected = [Double](repeating: 0, count: s.inCount)
            for o in argmax.indices { expected[o / (s.oh * s.ow) * s.h * s.w + Int(argmax[o])] += Double(dy[o]) }
            compareWithScalar({ maxBack(s, dy, argmax) }, check: { ref, got, isa in assertBitEqual(got, ref, "\(s) isa \(isa.rawValue)") })
            assertGradient(maxBack(s, dy, argmax), expected, rtol: 1e-6, atol: 1e-7, "\(s)")
        }
    }

    func testSharesCoverAllPlanes() {
        var rng = SeededGenerator(seed: 403)
        for s in [Shape(n: 2, c: 5, h: 7, w: 7, oh: 1, ow: 1), Shape(n: 3, c: 3, h: 9, w: 8, oh: 4, ow: 3)] {
            let x = rng.floats(s.inCount), dy = rng.floats(s.outCount)
            let argmax = forward(s, x).argmax
            let wholeAvg = avgBack(s, dy), wholeMax = maxBack(s, dy, argmax)
            for nth in [2, 3, 9, 11] {
                var a = [Float](repeating: .nan, count: s.inCount), m = a
                for ith in 0..<nth {
                    avgBack(s, dy, ith: ith, nth: nth, into: &a)
                    maxBack(s, dy, argmax, ith: ith, nth: nth, into: &m)
                }
                assertBitEqual(a, wholeAvg, "avg \(s) nth \(nth)")
                assertBitEqual(m, wholeMax, "max \(s) nth \(nth)")
            }
        }
    }

    func testRejectsBadArguments() {
        let s = Shape(n: 1, c: 1, h: 4, w: 4, oh: 2, ow: 2)
        let dy = [Float](repeating: 1, count: 4)
        let argmax: [Int32] = [0, 2, 8, 10]
        var dx = [Float](repeating: 7, count: 16)
        var p = s.params()
        XCTAssertEqual(ek_adaptive_avgpool2d_back_f32(nil, dy, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_avgpool2d_back_f32(&p, nil, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_avgpool2d_back_f32(&p, dy, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(nil, dy, argmax, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, nil, argmax, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, dy, nil, &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, dy, argmax, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, dy, [0, 2, 8, 16], &dx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, dy, [-3, 2, 8, 10], &dx), EK_ERR_INVALID_ARGUMENT)
        for mutate in [{ (q: inout ek_adaptive_pool2d_params) in q.n = 0 }, { $0.c = -1 }, { $0.h = 0 },
                       { $0.out_w = 0 }, { $0.ith = 1 }, { $0.nth = 0 }] {
            var bad = s.params()
            mutate(&bad)
            XCTAssertEqual(ek_adaptive_avgpool2d_back_f32(&bad, dy, &dx), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&bad, dy, argmax, &dx), EK_ERR_INVALID_ARGUMENT)
        }
        XCTAssertEqual(dx, [Float](repeating: 7, count: 16), "a rejected call writes nothing")
        XCTAssertEqual(ek_adaptive_maxpool2d_back_f32(&p, dy, argmax, &dx), EK_OK)
        XCTAssertEqual(ek_adaptive_avgpool2d_back_f32(&p, dy, &dx), EK_OK)
        XCTAssertEqual(dx, [Float](repeating: 0.25, count: 16))
    }
}
