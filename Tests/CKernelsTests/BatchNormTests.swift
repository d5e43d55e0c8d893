import CKernels
import TestSupport
import XCTest

final class BatchNormTests: KernelTestCase {
    private struct Stats {
        var mean: [Float], variance: [Float], gamma: [Float], beta: [Float]
        init(channels c: Int, _ rng: inout SeededGenerator) {
            mean = rng.floats(c, in: -1..<1)
            variance = rng.floats(c, in: 0.1..<2)
            gamma = rng.floats(c, in: -2..<2)
            beta = rng.floats(c, in: -1..<1)
        }
    }

    private func params(_ n: Int, _ c: Int, _ hw: Int, eps: Float = 1e-5, relu: Bool,
                        ith: Int = 0, nth: Int = 1) -> ek_batchnorm_params {
        ek_batchnorm_params(n: Int64(n), c: Int64(c), hw: Int64(hw), eps: eps,
                            activation: relu ? EK_ACT_RELU : EK_ACT_NONE, ith: Int32(ith), nth: Int32(nth))
    }

    private func forward(_ p: ek_batchnorm_params, _ x: [Float], _ s: Stats, affine: Bool = true) -> [Float] {
        var p = p
        var y = [Float](repeating: .nan, count: x.count)
        let st = withOptionalPointer(affine ? s.gamma : nil) { g in
            withOptionalPointer(affine ? s.beta : nil) { b in
                ek_batchnorm_forward_f32(&p, x, s.mean, s.variance, g, b, &y)
            }
        }
        XCTAssertEqual(st, EK_OK)
        return y
    }

    /// PyTorch's formula in Double.
    private func naive(_ n: Int, _ c: Int, _ hw: Int, _ x: [Float], _ s: Stats, eps: Float, relu: Bool,
                       affine: Bool = true) -> [Float] {
        (0..<x.count).map { i in
            let ch = (i / hw) % c
            let invstd = 1 / (Double(s.variance[ch]) + Double(eps)).squareRoot()
            var v = (Double(x[i]) - Double(s.mean[ch])) * invstd
            if affine { v = v * Double(s.gamma[ch]) + Double(s.beta[ch]) }
            return Float(relu ? max(v, 0) : v)
        }
    }

    func testForwardMatchesDefinitionAndScalarPath() {
        var rng = SeededGenerator(seed: 20)
        for hw in tailSizes() + [49, 3136] {
            let (n, c) = (rng.int(1...2), rng.int(1...3))
            let x = rng.floats(n * c * hw, in: -3..<3)
            let stats = Stats(channels: c, &rng)
            for relu in [false, true] {
                let p = params(n, c, hw, relu: relu)
                // One fused multiply-add everywhere: bit-identical across ISAs.
                compareWithScalar({ forward(p, x, stats) }, check: { ref, got, isa in
                    assertBitEqual(got, ref, "hw \(hw) relu \(relu) isa \(isa.rawValue)")
                })
                assertClose(forward(p, x, stats), naive(n, c, hw, x, stats, eps: 1e-5, relu: relu),
                            rtol: 2e-6, atol: 2e-6, "hw \(hw)")
                assertClose(forward(p, x, stats, affine: false),
                            naive(n, c, hw, x, stats, eps: 1e-5, relu: relu, affine: false),
                            rtol: 2e-6, atol: 2e-6, "no affine hw \(hw)")
            }
        }
    }

    func testBatchNorm1dAndInPlace() {
        var rng = SeededGenerator(seed: 21)
        let (n, c) = (5, 37)  // BatchNorm1d on (N, C): hw = 1
        let x = rng.floats(n * c), stats = Stats(channels: c, &rng)
        let expected = naive(n, c, 1, x, stats, eps: 1e-3, relu: false)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            var p = params(n, c, 1, eps: 1e-3, relu: false)
            var y = x
            y.withUnsafeMutableBufferPointer { buf in
                XCTAssertEqual(ek_batchnorm_forward_f32(&p, buf.baseAddress, stats.mean, stats.variance,
                                                        stats.gamma, stats.beta, buf.baseAddress), EK_OK)
            }
            assertClose(y, expected, rtol: 2e-6, atol: 2e-6)
        }
    }

    func testSharesCoverAllPlanes() {
        var rng = SeededGenerator(seed: 22)
        let (n, c, hw) = (3, 5, 29)
        let x = rng.floats(n * c * hw), stats = Stats(channels: c, &rng)
        let whole = forward(params(n, c, hw, relu: true), x, stats)
        for nth in [2, 4, 15, 16] {
            var y = [Float](repeating: .nan, count: x.count)
            for ith in 0..<nth {
                var p = params(n, c, hw, relu: true, ith: ith, nth: nth)
                XCTAssertEqual(ek_batchnorm_forward_f32(&p, x, stats.mean, stats.variance, stats.gamma, stats.beta, &y), EK_OK)
            }
            assertBitEqual(y, whole, "nth \(nth)")
        }
    }

    func testFoldIntoConvolutionEqualsConvolutionThenBatchNorm() {
        var rng = SeededGenerator(seed: 23)
        for withBias in [false, true] {
            let cc = ConvCase(n: 2, c: 3, h: 9, w: 8, k: 5, r: 3, s: 3, ph: 1, pw: 1, relu: false, bias: withBias)
            let x = rng.floats(cc.n * cc.c * cc.h * cc.w)
            let weight = rng.floats(cc.k * cc.c * 9)
            let bias: [Float]? = withBias ? rng.floats(cc.k) : nil
            let stats = Stats(channels: cc.k, &rng)
            let eps: Float = 1e-5

            let conv = runConv(cc, x: x, weight: weight, bias: bias)
            let expected = naive(cc.n, cc.k, cc.oh * cc.ow, conv, stats, eps: eps, relu: false)

            var folded = weight
            var foldedBias = [Float](repeating: .nan, count: cc.k)
            let st = withOptionalPointer(bias) { b in
                ek_batchnorm_fold_f32(Int64(cc.k), Int64(cc.c * 9), eps, &folded, b, stats.mean,
                                      stats.variance, stats.gamma, stats.beta, &foldedBias)
            }
            XCTAssertEqual(st, EK_OK)
            // The fold itself, against its definition.
            for k in 0..<cc.k {
                let scale = Double(stats.gamma[k]) / (Double(stats.variance[k]) + Double(eps)).squareRoot()
                let b = (Double(bias?[k] ?? 0) - Double(stats.mean[k])) * scale + Double(stats.beta[k])
                XCTAssertEqual(Double(foldedBias[k]), b, accuracy: 1e-5 * max(1, abs(b)))
                XCTAssertEqual(Double(folded[k * 27 + 4]), Double(weight[k * 27 + 4]) * scale,
                               accuracy: 1e-6 * max(1, abs(scale)))
            }
            let fused = runConv(cc, x: x, weight: folded, bias: foldedBias)
            assertClose(fused, expected, rtol: 1e-4, atol: 1e-4, "bias \(withBias)")
        }
    }

    func testRejectsBadArguments() {
        let x = [Float](repeating: 1, count: 8), s = [Float](repeating: 1, count: 2)
        var y = x
        var p = params(2, 2, 2, relu: false)
        XCTAssertEqual(ek_batchnorm_forward_f32(&p, x, s, s, nil, nil, &y), EK_OK)
        XCTAssertEqual(ek_batchnorm_forward_f32(nil, x, s, s, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_forward_f32(&p, nil, s, s, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_forward_f32(&p, x, nil, s, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_forward_f32(&p, x, s, nil, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_forward_f32(&p, x, s, s, nil, nil, nil), EK_ERR_INVALID_ARGUMENT)
        for mutate in [{ (q: inout ek_batchnorm_params) in q.n = 0 }, { $0.c = -1 }, { $0.hw = 0 },
                       { $0.eps = -1 }, { $0.eps = .nan }, { $0.ith = 1; $0.nth = 1 }, { $0.nth = 0 },
                       { $0.activation = ek_activation(rawValue: 4) }] {
            var bad = p
            mutate(&bad)
            XCTAssertEqual(ek_batchnorm_forward_f32(&bad, x, s, s, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        }
        var w = x, b = s
        XCTAssertEqual(ek_batchnorm_fold_f32(2, 4, 1e-5, &w, nil, s, s, nil, nil, &b), EK_OK)
        XCTAssertEqual(ek_batchnorm_fold_f32(0, 4, 1e-5, &w, nil, s, s, nil, nil, &b), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_fold_f32(2, 0, 1e-5, &w, nil, s, s, nil, nil, &b), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_fold_f32(2, 4, 1e-5, nil, nil, s, s, nil, nil, &b), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_fold_f32(2, 4, 1e-5, &w, nil, nil, s, nil, nil, &b), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_fold_f32(2, 4, 1e-5, &w, nil, s, nil, nil, nil, &b), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_fold_f32(2, 4, 1e-5, &w, nil, s, s, nil, nil, nil), EK_ERR_INVALID_ARGUMENT)
    }
}
