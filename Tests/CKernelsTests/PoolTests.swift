import CKernels
import TestSupport
import XCTest

struct PoolCase: CustomStringConvertible {
    var n = 1, c = 1, h = 1, w = 1, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1
    var ceil = false, includePad = true

    func params(ith: Int = 0, nth: Int = 1) -> ek_pool2d_params {
        ek_pool2d_params(n: Int64(n), c: Int64(c), h: Int64(h), w: Int64(w), kh: Int64(kh), kw: Int64(kw),
                         stride_h: Int64(sh), stride_w: Int64(sw), pad_h: Int64(ph), pad_w: Int64(pw),
                         dilation_h: Int64(dh), dilation_w: Int64(dw), ceil_mode: ceil ? 1 : 0,
                         count_include_pad: includePad ? 1 : 0, ith: Int32(ith), nth: Int32(nth))
    }
    /// PyTorch's pooling_output_shape, written independently of the C code.
    static func outSize(_ size: Int, _ k: Int, _ pad: Int, _ stride: Int, _ dil: Int, _ ceil: Bool) -> Int {
        let num = size + 2 * pad - dil * (k - 1) - 1 + (ceil ? stride - 1 : 0)
        var out = Int((Double(num) / Double(stride)).rounded(.down)) + 1
        if ceil && (out - 1) * stride >= size + pad { out -= 1 }
        return out
    }
    var oh: Int { Self.outSize(h, kh, ph, sh, dh, ceil) }
    var ow: Int { Self.outSize(w, kw, pw, sw, dw, ceil) }
    var description: String {
        "n\(n) c\(c) \(h)x\(w) k \(kh)x\(kw) s \(sh),\(sw) p \(ph),\(pw) d \(dh),\(dw) ceil \(ceil) cip \(includePad)"
    }
}

/// Max pool from the definition: taps in row-major order, first maximum wins, NaN wins.
func naiveMaxPool(_ pc: PoolCase, _ x: [Float]) -> ([Float], [Int32]) {
    var y = [Float](), idx = [Int32]()
    for plane in 0..<(pc.n * pc.c) {
        for oh in 0..<pc.oh {
            for ow in 0..<pc.ow {
                var best = -Float.infinity
                var bestIndex: Int? = nil
                for i in 0..<pc.kh {
                    let ih = oh * pc.sh - pc.ph + i * pc.dh
                    guard ih >= 0, ih < pc.h else { continue }
                    for j in 0..<pc.kw {
                        let iw = ow * pc.sw - pc.pw + j * pc.dw
                        guard iw >= 0, iw < pc.w else { continue }
                        let v = x[plane * pc.h * pc.w + ih * pc.w + iw]
                        if bestIndex == nil { bestIndex = ih * pc.w + iw }
                        if v > best || v.isNaN { best = v; bestIndex = ih * pc.w + iw }
                    }
                }
                y.append(best)
                idx.append(Int32(bestIndex ?? -1))
            }
        }
    }
    return (y, idx)
}

/// Average pool from PyTorch's definition, Double accumulation.
func naiveAvgPool(_ pc: PoolCase, _ x: [Float]) -> [Float] {
    var y = [Float]()
    for plane in 0..<(pc.n * pc.c) {
        for oh in 0..<pc.oh {
            for ow in 0..<pc.ow {
                let h0 = oh * pc.sh - pc.ph, w0 = ow * pc.sw - pc.pw
                let h1 = min(h0 + pc.kh, pc.h + pc.ph), w1 = min(w0 + pc.kw, pc.w + pc.pw)
                let padded = (h1 - h0) * (w1 - w0)
                let (rh0, rw0, rh1, rw1) = (max(h0, 0), max(w0, 0), min(h1, pc.h), min(w1, pc.w))
                guard rh0 < rh1, rw0 < rw1 else { y.append(0); continue }
                var sum = 0.0
                for ih in rh0..<rh1 { for iw in rw0..<rw1 { sum += Double(x[plane * pc.h * pc.w + ih * pc.w + iw]) } }
                y.append(Float(sum / Double(pc.includePad ? padded : (rh1 - rh0) * (rw1 - rw0))))
            }
        }
    }
    return y
}

final class PoolTests: KernelTestCase {
    private func maxPool(_ pc: PoolCase, _ x: [Float], ith: Int = 0, nth: Int = 1,
                         into y: inout [Float], _ idx: inout [Int32]) {
        var p = pc.params(ith: ith, nth: nth)
        XCTAssertEqual(ek_maxpool2d_f32(&p, x, &y, &idx), EK_OK, "\(pc)")
    }
    private func maxPool(_ pc: PoolCase, _ x: [Float]) -> ([Float], [Int32]) {
        var y = [Float](repeating: 42, count: pc.n * pc.c * pc.oh * pc.ow)
        var idx = [Int32](repeating: -7, count: y.count)
        maxPool(pc, x, into: &y, &idx)
        return (y, idx)
    }
    private func avgPool(_ pc: PoolCase, _ x: [Float], ith: Int = 0, nth: Int = 1, into y: inout [Float]) {
        var p = pc.params(ith: ith, nth: nth)
        XCTAssertEqual(ek_avgpool2d_f32(&p, x, &y), EK_OK, "\(pc)")
    }
    private func avgPool(_ pc: PoolCase, _ x: [Float]) -> [Float] {
        var y = [Float](repeating: 42, count: pc.n * pc.c * pc.oh * pc.ow)
        avgPool(pc, x, into: &y)
        return y
    }

    /// A random valid case (pad at most half the kernel, as PyTorch requires).
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

    func testOutputSizeFollowsPyTorch() {
        func size(_ pc: PoolCase) -> [Int64]? {
            var p = pc.params(), oh: Int64 = 0, ow: Int64 = 0
            return ek_pool2d_output_size(&p, &oh, &ow) == EK_OK ? [oh, ow] : nil
        }
        // ResNet stem: 112 -> 56.
        XCTAssertEqual(size(PoolCase(h: 112, w: 112, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1)), [56, 56])
        // ceil_mode rounds up ...
        XCTAssertEqual(size(PoolCase(h: 5, w: 5, kh: 2, kw: 2, sh: 2, sw: 2, ceil: true)), [3, 3])
        XCTAssertEqual(size(PoolCase(h: 5, w: 5, kh: 2, kw: 2, sh: 2, sw: 2, ceil: false)), [2, 2])
        // ... but drops a last window that would start in the right padding.
        XCTAssertEqual(size(PoolCase(h: 5, w: 5, kh: 3, kw: 3, sh: 3, sw: 3, ph: 1, pw: 1, ceil: true)), [2, 2])
        XCTAssertEqual(size(PoolCase(h: 6, w: 6, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true)), [4, 4])
        XCTAssertEqual(size(PoolCase(h: 2, w: 2, kh: 3, kw: 3, sh: 2, sw: 2, ceil: true)), [1, 1])
        XCTAssertEqual(size(PoolCase(h: 10, w: 9, kh: 3, kw: 2, sh: 1, sw: 2, ph: 0, pw: 1, dh: 2, dw: 3)), [6, 4])
        // Pad larger than half the kernel, empty output, zero sizes: rejected.
        XCTAssertNil(size(PoolCase(h: 8, w: 8, kh: 3, kw: 3, ph: 2, pw: 0)))
        XCTAssertNil(size(PoolCase(h: 2, w: 2, kh: 3, kw: 3)))
        XCTAssertNil(size(PoolCase(h: 0, w: 2, kh: 1, kw: 1)))
        XCTAssertNil(size(PoolCase(h: 2, w: 2, kh: 1, kw: 1, sh: 0)))
        XCTAssertNil(size(PoolCase(h: 2, w: 2, kh: 1, kw: 1, dw: 0)))
    }

    func testMaxPoolMatchesDefinitionAndScalarBitExactly() {
        var rng = SeededGenerator(seed: 30)
        var tested = 0
        while tested < 160 {
            guard let pc = randomCase(&rng, dilation: true) else { continue }
            tested += 1
            var x = rng.spicyFloats(pc.n * pc.c * pc.h * pc.w)
            if tested % 4 == 0 { x[rng.int(0...(x.count - 1))] = .nan }
            if tested % 5 == 0 { x[rng.int(0...(x.count - 1))] = -.infinity }
            let (ey, ei) = naiveMaxPool(pc, x)
            for isa in supportedISAs() {
                _ = ek_set_isa(isa)
                let (y, idx) = maxPool(pc, x)
                assertBitEqual(y, ey, "\(pc) isa \(isa.rawValue)")
                XCTAssertEqual(idx, ei, "\(pc) isa \(isa.rawValue)")
                var p = pc.params()
                var yOnly = [Float](repeating: 0, count: y.count)
                XCTAssertEqual(ek_maxpool2d_f32(&p, x, &yOnly, nil), EK_OK)
                assertBitEqual(yOnly, ey, "no argmax \(pc) isa \(isa.rawValue)")
            }
        }
    }

    func testMaxPoolNaNPropagatesAndFirstMaximumWins() {
        let pc = PoolCase(h: 2, w: 20, kh: 2, kw: 2, sh: 2, sw: 2)
        var x = [Float](repeating: 1, count: 40)  // all ties: index of the first tap
        x[3] = .nan          // window 1: NaN
        x[4] = 5; x[25] = 5  // window 2: first of the two 5s
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            let (y, idx) = maxPool(pc, x)
            XCTAssertEqual(idx[0], 0)
            XCTAssertTrue(y[1].isNaN)
            XCTAssertEqual(idx[1], 3)
            XCTAssertEqual(y[2], 5)
            XCTAssertEqual(idx[2], 4)
            XCTAssertEqual(idx[9], 18)
        }
    }

    func testResNetStemMaxPoolOnEveryISA() {
        var rng = SeededGenerator(seed: 31)
        let pc = PoolCase(n: 1, c: 3, h: 112, w: 112, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1)
        let x = rng.floats(pc.c * pc.h * pc.w)
        let (ey, ei) = naiveMaxPool(pc, x)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            let (y, idx) = maxPool(pc, x)
            assertBitEqual(y, ey)
            XCTAssertEqual(idx, ei)
        }
    }

    func testAvgPoolMatchesDefinitionAndScalarBitExactly() {
        var rng = SeededGenerator(seed: 32)
        var tested = 0
        while tested < 160 {
            guard let pc = randomCase(&rng, dilation: false) else { continue }
            tested += 1
            let x = rng.floats(pc.n * pc.c * pc.h * pc.w)
            let expected = naiveAvgPool(pc, x)
            // Each lane sums its window in the scalar order: identical bits.
            compareWithScalar({ avgPool(pc, x) }, check: { ref, got, isa in
                assertBitEqual(got, ref, "\(pc) isa \(isa.rawValue)")
            })
            assertClose(avgPool(pc, x), expected, rtol: 1e-5, atol: 1e-6, "\(pc)")
        }
    }

    func testAvgPoolCountIncludePadBothWays() {
        let x = [Float](repeating: 1, count: 9)  // 3×3 of ones
        var pc = PoolCase(h: 3, w: 3, kh: 2, kw: 2, sh: 2, sw: 2, ph: 1, pw: 1)
        // Windows: corner (1 real of 4), edge (2 of 4), centre (4 of 4).
        pc.includePad = true
        assertClose(avgPool(pc, x), [0.25, 0.5, 0.5, 1], rtol: 0, atol: 0)
        pc.includePad = false
        assertClose(avgPool(pc, x), [1, 1, 1, 1], rtol: 0, atol: 0)
        // ceil_mode: the last window [5, 8) runs past the padded border (7); count_include_pad
        // counts it clipped to that border (2 rows), not the full kernel (3).
        var ceilCase = PoolCase(h: 6, w: 1, kh: 3, kw: 1, sh: 2, sw: 1, ph: 1, pw: 0, ceil: true, includePad: true)
        XCTAssertEqual(ceilCase.oh, 4)
        let ones = [Float](repeating: 1, count: 6)
        assertClose(avgPool(ceilCase, ones), [2.0 / 3, 1, 1, 0.5], rtol: 1e-7, atol: 0)
        ceilCase.includePad = false
        assertClose(avgPool(ceilCase, ones), [1, 1, 1, 1], rtol: 0, atol: 0)
    }

    func testMaxPoolWindowOverPaddingOnly() {
        // H = 1 with a dilated kernel: rows -1 and 1 are both padding.
        let pc = PoolCase(h: 1, w: 20, kh: 2, kw: 2, sh: 3, sw: 2, ph: 1, pw: 1, dh: 2, dw: 1, ceil: true)
        XCTAssertEqual(pc.oh, 1)
        let x = (0..<20).map { Float($0) }
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            let (y, idx) = maxPool(pc, x)
            XCTAssertTrue(y.allSatisfy { $0 == -.infinity })
            XCTAssertTrue(idx.allSatisfy { $0 == -1 }, "argmax -1 when no input element is in the window")
        }
    }

    func testPoolSharesCoverAllPlanes() {
        var rng = SeededGenerator(seed: 33)
        let pc = PoolCase(n: 2, c: 5, h: 9, w: 11, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1)
        let x = rng.floats(pc.n * pc.c * pc.h * pc.w)
        let (wy, wi) = maxPool(pc, x)
        let wa = avgPool(pc, x)
        for nth in [2, 3, 10, 11] {
            var y = [Float](repeating: .nan, count: wy.count), idx = [Int32](repeating: -1, count: wy.count)
            var a = y
            for ith in 0..<nth {
                maxPool(pc, x, ith: ith, nth: nth, into: &y, &idx)
                avgPool(pc, x, ith: ith, nth: nth, into: &a)
            }
            assertBitEqual(y, wy, "max nth \(nth)")
            XCTAssertEqual(idx, wi, "max nth \(nth)")
            assertBitEqual(a, wa, "avg nth \(nth)")
        }
    }

    func testPoolRejectsBadArguments() {
        let x = [Float](repeating: 1, count: 16)
        var y = x
        var idx = [Int32](repeating: 0, count: 16)
        let good = PoolCase(h: 4, w: 4, kh: 2, kw: 2, sh: 2, sw: 2)
        var p = good.params()
        XCTAssertEqual(ek_maxpool2d_f32(&p, x, &y, &idx), EK_OK)
        XCTAssertEqual(ek_maxpool2d_f32(nil, x, &y, &idx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_maxpool2d_f32(&p, nil, &y, &idx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_maxpool2d_f32(&p, x, nil, &idx), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_avgpool2d_f32(&p, x, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_avgpool2d_f32(&p, nil, &y), EK_ERR_INVALID_ARGUMENT)
        var dilated = PoolCase(h: 4, w: 4, kh: 2, kw: 2, dh: 2).params()
        XCTAssertEqual(ek_avgpool2d_f32(&dilated, x, &y), EK_ERR_INVALID_ARGUMENT, "average pool has no dilation")
        for mutate in [{ (q: inout ek_pool2d_params) in q.n = 0 }, { $0.c = 0 }, { $0.kh = 0 }, { $0.stride_w = 0 },
                       { $0.pad_h = -1 }, { $0.pad_w = 2 }, { $0.ith = 1 }, { $0.nth = 0 }, { $0.ith = -1 }] {
            var bad = good.params()
            mutate(&bad)
            XCTAssertEqual(ek_maxpool2d_f32(&bad, x, &y, &idx), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(ek_avgpool2d_f32(&bad, x, &y), EK_ERR_INVALID_ARGUMENT)
        }
    }
}
