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

    /// The fold's contract: scale = γ / √(var + eps), W·scale and β + (b − mean)·scale computed
    /// in double, each rounded to float once, so each folded value is the correctly rounded
    /// float of that double expression (not of float products, which would perturb the model).
    private func expectedFold(_ weight: [Float], crs: Int, bias: [Float]?, _ s: Stats?, channels k: Int,
                              eps: Float) -> (weight: [Float], bias: [Float]) {
        var w = weight, b = [Float](repeating: 0, count: k)
        for ch in 0..<k {
            let gamma = s.map { Double($0.gamma[ch]) } ?? 1, beta = s.map { Double($0.beta[ch]) } ?? 0
            let mean = Double(s?.mean[ch] ?? 0.25), variance = Double(s?.variance[ch] ?? 0.5)
            let scale = gamma / (variance + Double(eps)).squareRoot()
            for i in 0..<crs { w[ch * crs + i] = Float(Double(weight[ch * crs + i]) * scale) }
            let shifted = (Double(bias?[ch] ?? 0) - mean) * scale
            b[ch] = Float(beta + shifted)
        }
        return (w, b)
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
            // The fold itself, bit for bit against its double-precision definition.
            let exact = expectedFold(weight, crs: cc.c * 9, bias: bias, stats, channels: cc.k, eps: eps)
            assertBitEqual(folded, exact.weight, "weights, bias \(withBias)")
            assertBitEqual(foldedBias, exact.bias, "bias, bias \(withBias)")
            let fused = runConv(cc, x: x, weight: folded, bias: foldedBias)
            assertClose(fused, expected, rtol: 1e-4, atol: 1e-4, "bias \(withBias)")
        }
    }

    /// Without gamma and beta (1 and 0), at every ISA (the fold has no SIMD path, so the
    /// level must not matter), in place over the bias, on many channels with wide scales.
    func testFoldIsCorrectlyRoundedWithoutAffineAtEveryISA() {
        var rng = SeededGenerator(seed: 24)
        let (k, crs) = (37, 29)
        let weight = rng.floats(k * crs, in: -3..<3)
        let mean = [Float](repeating: 0.25, count: k), variance = [Float](repeating: 0.5, count: k)
        let exact = expectedFold(weight, crs: crs, bias: nil, nil, channels: k, eps: 1e-3)
        var stats = Stats(channels: k, &rng)
        stats.variance = (0..<k).map { Float(pow(10, Double($0 % 9) - 4)) }  // 1e-4 … 1e4
        let bias = rng.floats(k)
        let affine = expectedFold(weight, crs: crs, bias: bias, stats, channels: k, eps: 1e-5)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            var w = weight, b = [Float](repeating: .nan, count: k)
            XCTAssertEqual(ek_batchnorm_fold_f32(Int64(k), Int64(crs), 1e-3, &w, nil, mean, variance, nil, nil, &b), EK_OK)
            assertBitEqual(w, exact.weight, "isa \(isa.rawValue)")
            assertBitEqual(b, exact.bias, "isa \(isa.rawValue)")
            var w2 = weight, b2 = bias  // bias_out aliases bias_in
            b2.withUnsafeMutableBufferPointer { out in
                XCTAssertEqual(ek_batchnorm_fold_f32(Int64(k), Int64(crs), 1e-5, &w2, out.baseAddress, stats.mean, stats.variance,
                                                     stats.gamma, stats.beta, out.baseAddress), EK_OK)
            }
            assertBitEqual(w2, affine.weight, "affine, isa \(isa.rawValue)")
            assertBitEqual(b2, affine.bias, "affine, isa \(isa.rawValue)")
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
