import CKernels
import TestSupport
import XCTest

final class AdaptivePoolTests: KernelTestCase {
    private func params(_ n: Int, _ c: Int, _ h: Int, _ w: Int, _ oh: Int, _ ow: Int, ith: Int = 0,
                        nth: Int = 1) -> ek_adaptive_pool2d_params {
        ek_adaptive_pool2d_params(n: Int64(n), c: Int64(c), h: Int64(h), w: Int64(w), out_h: Int64(oh),
                                  out_w: Int64(ow), ith: Int32(ith), nth: Int32(nth))
    }

    /// PyTorch's bins, in Double: start = floor(i*H/OH), end = ceil((i+1)*H/OH).
    private func bins(_ i: Int, _ size: Int, _ out: Int) -> Range<Int> {
        let start = Int((Double(i * size) / Double(out)).rounded(.down))
        let end = Int((Double((i + 1) * size) / Double(out)).rounded(.up))
        return start..<end
    }

    private func naive(_ planes: Int, _ h: Int, _ w: Int, _ oh: Int, _ ow: Int, _ x: [Float])
        -> (avg: [Float], max: [Float], argmax: [Int32]) {
        var avg = [Float](), mx = [Float](), arg = [Int32]()
        for plane in 0..<planes {
            for i in 0..<oh {
                for j in 0..<ow {
                    var sum = 0.0, best = -Float.infinity, bestIndex = -1
                    for ih in bins(i, h, oh) {
                        for iw in bins(j, w, ow) {
                            let v = x[plane * h * w + ih * w + iw]
                            sum += Double(v)
                            if bestIndex < 0 { bestIndex = ih * w + iw }
                            if v > best || v.isNaN { best = v; bestIndex = ih * w + iw }
                        }
                    }
                    avg.append(Float(sum / Double(bins(i, h, oh).count * bins(j, w, ow).count)))
                    mx.append(best)
                    arg.append(Int32(bestIndex))
                }
            }
        }
        return (avg, mx, arg)
    }

    private func run(_ p: ek_adaptive_pool2d_params, _ x: [Float]) -> (avg: [Float], max: [Float], argmax: [Int32]) {
        var p = p
        let count = Int(p.n * p.c * p.out_h * p.out_w)
        var avg = [Float](repeating: .nan, count: count), mx = avg
        var arg = [Int32](repeating: -9, count: count)
        XCTAssertEqual(ek_adaptive_avgpool2d_f32(&p, x, &avg), EK_OK)
        XCTAssertEqual(ek_adaptive_maxpool2d_f32(&p, x, &mx, &arg), EK_OK)
        return (avg, mx, arg)
    }

    func testNonDivisibleBinsMatchDefinition() {
        var rng = SeededGenerator(seed: 40)
        let shapes = [(7, 7, 3, 3), (5, 5, 2, 2), (7, 5, 3, 2), (6, 9, 4, 5), (3, 3, 5, 4), (1, 1, 2, 3),
                      (10, 3, 1, 1), (9, 11, 9, 11), (14, 14, 7, 7)]
        for (h, w, oh, ow) in shapes {
            var x = rng.floats(2 * 3 * h * w)
            x[rng.int(0...(x.count - 1))] = .nan
            let expected = naive(6, h, w, oh, ow, x)
            for isa in supportedISAs() {
                _ = ek_set_isa(isa)
                let got = run(params(2, 3, h, w, oh, ow), x)
                assertClose(got.avg, expected.avg, rtol: 1e-5, atol: 1e-6, "\(h)x\(w) -> \(oh)x\(ow)")
                assertBitEqual(got.max, expected.max, "\(h)x\(w) -> \(oh)x\(ow)")
                XCTAssertEqual(got.argmax, expected.argmax, "\(h)x\(w) -> \(oh)x\(ow)")
            }
        }
    }

    func testGlobalAveragePoolOnEveryISA() {
        var rng = SeededGenerator(seed: 41)
        for hw in tailSizes() + [49, 3136] {
            let x = rng.floats(3 * hw, in: 0..<2)
            let expected = naive(3, 1, hw, 1, 1, x).avg
            // All paths share one (16-way interleaved) summation order.
            compareWithScalar({ run(params(1, 3, 1, hw, 1, 1), x).avg }, check: { ref, got, isa in
                assertBitEqual(got, ref, "hw \(hw) isa \(isa.rawValue)")
            })
            for isa in supportedISAs() {
                _ = ek_set_isa(isa)
                assertClose(run(params(3, 1, hw, 1, 1, 1), x).avg, expected, rtol: 1e-6, atol: 1e-7, "hw \(hw)")
            }
        }
    }

    func testSharesCoverAllPlanes() {
        var rng = SeededGenerator(seed: 42)
        let x = rng.floats(2 * 5 * 7 * 7)
        for (oh, ow) in [(1, 1), (3, 3)] {
            let whole = run(params(2, 5, 7, 7, oh, ow), x)
            for nth in [2, 3, 10, 12] {
                var avg = [Float](repeating: .nan, count: whole.avg.count), mx = avg
                var arg = [Int32](repeating: -9, count: avg.count)
                for ith in 0..<nth {
                    var p = params(2, 5, 7, 7, oh, ow, ith: ith, nth: nth)
                    XCTAssertEqual(ek_adaptive_avgpool2d_f32(&p, x, &avg), EK_OK)
                    XCTAssertEqual(ek_adaptive_maxpool2d_f32(&p, x, &mx, &arg), EK_OK)
                }
                assertBitEqual(avg, whole.avg)
                assertBitEqual(mx, whole.max)
                XCTAssertEqual(arg, whole.argmax)
            }
        }
    }

    func testRejectsBadArguments() {
        let x = [Float](repeating: 1, count: 16)
        var y = x
        var good = params(1, 1, 4, 4, 2, 2)
        XCTAssertEqual(ek_adaptive_maxpool2d_f32(&good, x, &y, nil), EK_OK)
        XCTAssertEqual(ek_adaptive_avgpool2d_f32(nil, x, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_avgpool2d_f32(&good, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_adaptive_maxpool2d_f32(&good, x, nil, nil), EK_ERR_INVALID_ARGUMENT)
        for bad in [params(0, 1, 4, 4, 2, 2), params(1, 1, 0, 4, 2, 2), params(1, 1, 4, 4, 0, 2),
                    params(1, 1, 4, 4, 2, -1), params(1, 1, 4, 4, 2, 2, ith: 1, nth: 1),
                    params(1, 1, 4, 4, 2, 2, ith: 0, nth: 0)] {
            var b = bad
            XCTAssertEqual(ek_adaptive_avgpool2d_f32(&b, x, &y), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(ek_adaptive_maxpool2d_f32(&b, x, &y, nil), EK_ERR_INVALID_ARGUMENT)
        }
    }
}
