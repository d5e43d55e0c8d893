import CKernels
import TestSupport
import XCTest

/// The flat indices of channel `ch` in an (N, C, HW) tensor.
private func channelIndices(_ n: Int, _ c: Int, _ hw: Int, _ ch: Int) -> [Int] {
    var idx = [Int]()
    for img in 0..<n { idx += Array(((img * c + ch) * hw)..<((img * c + ch + 1) * hw)) }
    return idx
}

final class BatchNormBackwardTests: KernelTestCase {
    private func params(_ n: Int, _ c: Int, _ hw: Int, eps: Float = 1e-5, relu: Bool = false,
                        ith: Int = 0, nth: Int = 1) -> ek_batchnorm_params {
        ek_batchnorm_params(n: Int64(n), c: Int64(c), hw: Int64(hw), eps: eps,
                            activation: relu ? EK_ACT_RELU : EK_ACT_NONE, ith: Int32(ith), nth: Int32(nth))
    }

    // MARK: Inference form

    /// Inference batch norm in Double: (x - mean) / sqrt(var + eps) * gamma + beta.
    private func inferenceD(_ n: Int, _ c: Int, _ hw: Int, _ x: [Double], mean: [Float], variance: [Float],
                            gamma: [Float]?, beta: [Float]?, eps: Float) -> [Double] {
        (0..<x.count).map { i in
            let ch = (i / hw) % c
            let invstd = 1 / (Double(variance[ch]) + Double(eps)).squareRoot()
            return (x[i] - Double(mean[ch])) * invstd * Double(gamma?[ch] ?? 1) + Double(beta?[ch] ?? 0)
        }
    }

    private func inferenceBack(_ p: ek_batchnorm_params, _ dy: [Float], _ variance: [Float], _ gamma: [Float]?) -> [Float] {
        var p = p
        var dx = [Float](repeating: .nan, count: dy.count)
        let st = withOptionalPointer(gamma) { ek_batchnorm_back_f32(&p, dy, variance, $0, &dx) }
        XCTAssertEqual(st, EK_OK)
        return dx
    }

    /// dx = dy·gamma/sqrt(var + eps): the same bits on every ISA (one multiply by the scale
    /// the forward uses), within 2 float roundings of the Double value.
    func testInferenceBackMatchesDefinitionAndScalarBitExactly() {
        var rng = SeededGenerator(seed: 500)
        for hw in tailSizes() + [49, 3136] {
            let (n, c) = (rng.int(1...2), rng.int(1...3))
            let dy = rng.spicyFloats(n * c * hw)
            let variance = rng.floats(c, in: 0.1..<2), gamma = rng.floats(c, in: -2..<2)
            for affine in [true, false] {
                let g: [Float]? = affine ? gamma : nil
                let p = params(n, c, hw, relu: hw % 2 == 0)  // the activation is ignored
                compareWithScalar({ inferenceBack(p, dy, variance, g) }, check: { ref, got, isa in
                    assertBitEqual(got, ref, "hw \(hw) affine \(affine) isa \(isa.rawValue)")
                })
                let expected = (0..<dy.count).map { i -> Float in
                    let ch = (i / hw) % c
                    return Float(Double(dy[i]) * Double(g?[ch] ?? 1) / (Double(variance[ch]) + 1e-5).squareRoot())
                }
                assertClose(inferenceBack(p, dy, variance, g), expected, rtol: 3e-7, atol: 0, "hw \(hw) affine \(affine)")
            }
        }
    }

    /// Central differences of Σ w·bn(x) on the Double forward (checked against
    /// ek_batchnorm_forward_f32).
    private func checkInferenceBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 501)
        for (n, c, hw) in [(2, 3, 17), (1, 4, 49), (5, 3, 1)] {
            let x = rng.floats(n * c * hw, in: -3..<3)
            let mean = rng.floats(c), variance = rng.floats(c, in: 0.1..<2)
            let gamma = rng.floats(c, in: -2..<2), beta = rng.floats(c)
            var p = params(n, c, hw)
            var y = [Float](repeating: .nan, count: x.count)
            XCTAssertEqual(ek_batchnorm_forward_f32(&p, x, mean, variance, gamma, beta, &y), EK_OK)
            let xd = x.map(Double.init)
            let forwardD = { (v: [Double]) in
                self.inferenceD(n, c, hw, v, mean: mean, variance: variance, gamma: gamma, beta: beta, eps: 1e-5)
            }
            let channel = { (i: Int) in (i / hw) % c }
            let scale = (0..<c).map { abs(Double(gamma[$0])) / (Double(variance[$0]) + 1e-5).squareRoot() }
            // The float forward fma(x, scale, shift), scale = γ/√(var + ε) made with 3
            // roundings and shift = β − mean·scale with 2 more: γ(5)·((|x| + |mean|)·|scale| + |β|).
            let magnitude = { (i: Int, h: Double) in
                (abs(xd[i]) + h + abs(Double(mean[channel(i)]))) * scale[channel(i)] + abs(Double(beta[channel(i)]))
            }
            assertWithinBounds(y, forwardD(xd), x.indices.map { roundingBound(5) * magnitude($0, 0) }, "forward")
            // L is affine in x: the difference is exact but for Double's rounding, about 6 per
            // output and the sum, of terms at most |w|·magnitude at |x| + h.
            let h = 1e-3
            let w = rng.floats(x.count).map(Double.init)
            let at = sampleIndices(x.count, limit: 30, &rng)
            let fd = centralDifferences(xd, at: at, h: h) { dotD(w, forwardD($0)) }
            let fdError = centralDifferenceRounding(magnitude: x.indices.reduce(0) { $0 + abs(w[$1]) * magnitude($1, h) },
                                                    roundings: 6 + x.count + 1, h: h)
            // The kernel: dy·scale, scale made with 3 roundings: γ(4)·|dy·scale|.
            assertWithinBounds(pick(inferenceBack(p, w.map { Float($0) }, variance, gamma), at), fd,
                               at.map { roundingBound(4) * abs(w[$0]) * scale[channel($0)] + fdError }, "n\(n) c\(c) hw\(hw)")
        }
    }

    func testInferenceBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkInferenceBackAgreesWithFiniteDifferences() } }
    func testInferenceBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkInferenceBackAgreesWithFiniteDifferences() } }
    func testInferenceBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkInferenceBackAgreesWithFiniteDifferences() } }

    func testInferenceBackInPlaceAndShares() {
        var rng = SeededGenerator(seed: 502)
        let (n, c, hw) = (3, 5, 29)
        let dy = rng.floats(n * c * hw), variance = rng.floats(c, in: 0.1..<2), gamma = rng.floats(c)
        let whole = inferenceBack(params(n, c, hw), dy, variance, gamma)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            var inPlace = dy
            var p = params(n, c, hw)
            inPlace.withUnsafeMutableBufferPointer { b in
                XCTAssertEqual(ek_batchnorm_back_f32(&p, b.baseAddress, variance, gamma, b.baseAddress), EK_OK)
            }
            assertBitEqual(inPlace, whole, "in place, isa \(isa.rawValue)")
        }
        for nth in [2, 4, 15, 16] {
            var dx = [Float](repeating: .nan, count: dy.count)
            for ith in 0..<nth {
                var p = params(n, c, hw, ith: ith, nth: nth)
                XCTAssertEqual(ek_batchnorm_back_f32(&p, dy, variance, gamma, &dx), EK_OK)
            }
            assertBitEqual(dx, whole, "nth \(nth)")
        }
    }

    // MARK: Training form

    /// Training batch norm in Double: batch mean, biased variance.
    private func trainD(_ n: Int, _ c: Int, _ hw: Int, _ x: [Double], gamma: [Double]?, beta: [Double]?,
                        eps: Double) -> (y: [Double], mean: [Double], invstd: [Double]) {
        var mean = [Double](repeating: 0, count: c), invstd = mean
        var y = [Double](repeating: 0, count: x.count)
        let m = Double(n * hw)
        for ch in 0..<c {
            let idx = channelIndices(n, c, hw, ch)
            var mu = 0.0, v = 0.0
            for i in idx { mu += x[i] }
            mu /= m
            for i in idx { v += (x[i] - mu) * (x[i] - mu) }
            v /= m
            mean[ch] = mu
            invstd[ch] = 1 / (v + eps).squareRoot()
            for i in idx { y[i] = (x[i] - mu) * invstd[ch] * (gamma?[ch] ?? 1) + (beta?[ch] ?? 0) }
        }
        return (y, mean, invstd)
    }

    private struct TrainCase: CustomStringConvertible {
        var n: Int, c: Int, hw: Int, offset: Float = 0
        var description: String { "n\(n) c\(c) hw\(hw) offset \(offset)" }
    }
    /// Tails of both vector widths, BatchNorm1d (hw = 1), a large plane, and data far from 0
    /// (mean 50, std ~0.6), where a one-pass variance would lose its digits.
    private let trainCases = [TrainCase(n: 2, c: 3, hw: 17), TrainCase(n: 3, c: 2, hw: 35), TrainCase(n: 1, c: 4, hw: 49),
                              TrainCase(n: 6, c: 5, hw: 1), TrainCase(n: 2, c: 2, hw: 300),
                              TrainCase(n: 2, c: 2, hw: 23, offset: 50)]

    private func trainForward(_ p: ek_batchnorm_params, _ x: [Float], _ gamma: [Float]?, _ beta: [Float]?)
        -> (y: [Float], mean: [Float], invstd: [Float]) {
        var p = p
        var y = [Float](repeating: .nan, count: x.count)
        var mean = [Float](repeating: .nan, count: Int(p.c)), invstd = mean
        let st = withOptionalPointer(gamma) { g in
            withOptionalPointer(beta) { b in ek_batchnorm_train_forward_f32(&p, x, g, b, &y, &mean, &invstd) }
        }
        XCTAssertEqual(st, EK_OK)
        return (y, mean, invstd)
    }

    private func trainBack(_ p: ek_batchnorm_params, _ x: [Float], _ dy: [Float], _ mean: [Float], _ invstd: [Float],
                           _ gamma: [Float]?, _ dgamma: inout [Float], _ dbeta: inout [Float]) -> [Float] {
        var p = p
        var dx = [Float](repeating: .nan, count: x.count)
        let st = withOptionalPointer(gamma) { g in
            ek_batchnorm_train_back_f32(&p, x, dy, mean, invstd, g, &dx, &dgamma, &dbeta)
        }
        XCTAssertEqual(st, EK_OK)
        return dx
    }

    /// Batch statistics and y against Double, the same bits on every ISA (statistics by one
    /// shared routine, then one subtraction and one fused multiply-add per element), fused
    /// ReLU, and y written over x.
    func testTrainForwardMatchesDefinition() {
        var rng = SeededGenerator(seed: 503)
        for tc in trainCases {
            let x = rng.floats(tc.n * tc.c * tc.hw, in: -1..<1).map { $0 + tc.offset }
            let gamma = rng.floats(tc.c, in: -2..<2), beta = rng.floats(tc.c)
            for (affine, relu) in [(true, false), (false, false), (true, true)] {
                let g: [Float]? = affine ? gamma : nil, b: [Float]? = affine ? beta : nil
                let p = params(tc.n, tc.c, tc.hw, eps: 1e-5, relu: relu)
                compareWithScalar({
                    let r = trainForward(p, x, g, b)
                    return r.y + r.mean + r.invstd
                }, check: { ref, got, isa in assertBitEqual(got, ref, "\(tc) affine \(affine) relu \(relu) isa \(isa.rawValue)") })
                let (y, mean, invstd) = trainForward(p, x, g, b)
                let e = trainD(tc.n, tc.c, tc.hw, x.map(Double.init), gamma: g?.map(Double.init), beta: b?.map(Double.init), eps: 1e-5)
                assertGradient(mean, e.mean, rtol: 1e-7, atol: 1e-7, "mean \(tc)")
                assertClose(invstd, e.invstd.map { Float($0) }, rtol: 1e-6, atol: 0, "invstd \(tc)")
                // The float mean and x - mean carry ~1 ulp of |x| (4e-6 at 50): relative to y's scale.
                let yExpected = e.y.map { relu ? max($0, 0) : $0 }
                assertGradient(y, yExpected, rtol: tc.offset == 0 ? 2e-6 : 2e-5, atol: 1e-6, "y \(tc) affine \(affine)")

                var inPlace = x
                var pp = p
                var m2 = mean, s2 = invstd
                let st = inPlace.withUnsafeMutableBufferPointer { buf in
                    withOptionalPointer(g) { gp in withOptionalPointer(b) { bp in
                        ek_batchnorm_train_forward_f32(&pp, buf.baseAddress, gp, bp, buf.baseAddress, &m2, &s2)
                    } }
                }
                XCTAssertEqual(st, EK_OK)
                assertBitEqual(inPlace, y, "in place \(tc)")
            }
        }
    }

    /// dx, dgamma and dbeta against the Double formula (accumulating onto what dgamma/dbeta
    /// held), the same bits on every ISA, NULL dgamma/dbeta, and dx written over dy.
    func testTrainBackMatchesDefinitionOnEveryISA() {
        var rng = SeededGenerator(seed: 504)
        for tc in trainCases {
            let x = rng.floats(tc.n * tc.c * tc.hw, in: -1..<1).map { $0 + tc.offset }
            let dy = rng.floats(x.count)
            let gamma = rng.floats(tc.c, in: -2..<2), beta = rng.floats(tc.c)
            let g0 = rng.floats(tc.c), b0 = rng.floats(tc.c)
            for affine in [true, false] {
                let g: [Float]? = affine ? gamma : nil
                let p = params(tc.n, tc.c, tc.hw)
                let (_, mean, invstd) = trainForward(p, x, g, affine ? beta : nil)
                compareWithScalar({
                    var dg = g0, db = b0
                    let dx = trainBack(p, x, dy, mean, invstd, g, &dg, &db)
                    return dx + dg + db
                }, check: { ref, got, isa in assertBitEqual(got, ref, "\(tc) affine \(affine) isa \(isa.rawValue)") })

                // The formula in Double, from the kernel's float mean and invstd.
                var edx = [Double](repeating: 0, count: x.count)
                var edg = g0.map(Double.init), edb = b0.map(Double.init)
                let m = Double(tc.n * tc.hw)
                for ch in 0..<tc.c {
                    let idx = channelIndices(tc.n, tc.c, tc.hw, ch)
                    let s = Double(invstd[ch]), gm = Double(g?[ch] ?? 1), mu = Double(mean[ch])
                    var sumDy = 0.0, sumDyXhat = 0.0
                    for i in idx {
                        sumDy += Double(dy[i])
                        sumDyXhat += Double(dy[i]) * (Double(x[i]) - mu) * s
                    }
                    for i in idx {
                        let xhat: Double = (Double(x[i]) - mu) * s
                        let centred: Double = Double(dy[i]) - sumDy / m - xhat * sumDyXhat / m
                        edx[i] = gm * s * centred
                    }
                    edg[ch] += sumDyXhat
                    edb[ch] += sumDy
                }
                var dg = g0, db = b0
                let dx = trainBack(p, x, dy, mean, invstd, g, &dg, &db)
                // dx = a·dy + b·(x - mean) + c with float a, b, c: a few ulps of the largest term.
                assertGradient(dx, edx, rtol: 1e-5, atol: 1e-6, "dx \(tc) affine \(affine)")
                assertGradient(dg, edg, rtol: 1e-6, atol: 1e-6, "dgamma \(tc)")
                assertGradient(db, edb, rtol: 1e-6, atol: 1e-6, "dbeta \(tc)")

                var pp = p
                let st = withOptionalPointer(g) { gp in
                    var noGrad = [Float](repeating: .nan, count: x.count)
                    return ek_batchnorm_train_back_f32(&pp, x, dy, mean, invstd, gp, &noGrad, nil, nil)
                }
                XCTAssertEqual(st, EK_OK, "dgamma and dbeta may be NULL")
                var inPlace = dy
                let st2 = inPlace.withUnsafeMutableBufferPointer { buf in
                    withOptionalPointer(g) { gp in
                        ek_batchnorm_train_back_f32(&pp, x, buf.baseAddress, mean, invstd, gp, buf.baseAddress, nil, nil)
                    }
                }
                XCTAssertEqual(st2, EK_OK)
                assertBitEqual(inPlace, dx, "dx over dy \(tc)")
            }
        }
    }

    /// Central differences of L = Σ w·bn_train(x; γ, β) in Double, through the batch
    /// statistics, with respect to x, γ and β.
    private func checkTrainBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 505)
        for tc in trainCases {
            let x = rng.floats(tc.n * tc.c * tc.hw, in: -1..<1).map { $0 + tc.offset }
            let gamma = rng.floats(tc.c, in: -2..<2), beta = rng.floats(tc.c)
            let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
            let w = rng.floats(x.count).map(Double.init)
            let p = params(tc.n, tc.c, tc.hw)
            let (_, mean, invstd) = trainForward(p, x, gamma, beta)
            var dg = [Float](repeating: 0, count: tc.c), db = dg
            let dx = trainBack(p, x, w.map { Float($0) }, mean, invstd, gamma, &dg, &db)

            let at = sampleIndices(x.count, limit: 30, &rng)
            let loss = { (v: [Double], g: [Double], b: [Double]) in
                dotD(w, self.trainD(tc.n, tc.c, tc.hw, v, gamma: g, beta: b, eps: 1e-5).y)
            }
            let m = tc.n * tc.hw
            let channel = { (i: Int) in (i / tc.hw) % tc.c }
            let maxAbs = (0..<tc.c).map { ch in channelIndices(tc.n, tc.c, tc.hw, ch).map { abs(xd[$0]) }.max() ?? 0 }
            // Double's rounding of one loss: the mean and variance sums (2m), a few per element
            // and the sum over elements, of terms at most |w|·(|γ|·invstd·(|x − mean| + max|x|)
            // + |β|) — the mean's error is relative to max|x|, not to |x − mean|.
            let h = 1e-4
            let lossMagnitude = x.indices.reduce(0.0) { sum, i in
                let ch = channel(i)
                return sum + abs(w[i]) * ((abs(gd[ch]) + h) * Double(invstd[ch]) * (abs(xd[i] - Double(mean[ch])) + maxAbs[ch] + h)
                                          + abs(bd[ch]) + h)
            }
            let fdError = centralDifferenceRounding(magnitude: lossMagnitude, roundings: 2 * m + 10 + x.count, h: h)

            // dx. Truncation: L is smooth in x, so the central difference errs by c·h² + O(h⁴);
            // its difference from the one at 2h, 3c·h² + O(h⁴), bounds that with room to spare.
            let fdX = centralDifferences(xd, at: at, h: h) { loss($0, gd, bd) }
            let fdX2 = centralDifferences(xd, at: at, h: 2 * h) { loss($0, gd, bd) }
            // The kernel: dx = fma(dy, a, fma(x − mean, b, c)) with a = γ·invstd, b = −γ·invstd³·
            // Σdy(x − mean)/M, c = −γ·invstd·Σdy/M from Double sums, each rounded once, with the
            // float invstd (rounded once, cubed in b) and the float mean, |mean − m| ≤ u·|m|,
            // which enters through x − mean (|b|·|m|) and through Σdy(x − mean) in b
            // (|c|·|m|·invstd·|x̂|); with x − mean and the two fmas: 10 roundings relative to
            // |a·dy| + |b|·(|x − mean| + |mean|) + |c|·(1 + |mean|·invstd·|x̂|).
            let stats = (0..<tc.c).map { ch -> (a: Double, b: Double, c: Double) in
                let idx = channelIndices(tc.n, tc.c, tc.hw, ch)
                let s = Double(invstd[ch]), g = gd[ch], mu = Double(mean[ch])
                let sumDy = idx.reduce(0.0) { $0 + w[$1] }, sumDyDev = idx.reduce(0.0) { $0 + w[$1] * (xd[$1] - mu) }
                return (g * s, -g * s * s * s * sumDyDev / Double(m), -g * s * sumDy / Double(m))
            }
            let dxScale = { (i: Int) -> Double in
                let ch = channel(i), k = stats[ch], mu = Double(mean[ch]), s = Double(invstd[ch])
                let dev = abs(xd[i] - mu)
                return abs(k.a * w[i]) + abs(k.b) * (dev + abs(mu)) + abs(k.c) * (1 + abs(mu) * s * dev * s)
            }
            assertWithinBounds(pick(dx, at), fdX,
                               at.indices.map { roundingBound(10) * dxScale(at[$0]) + abs(fdX2[$0] - fdX[$0]) + fdError }, "dx \(tc)")
            // dγ = Σdy·x̂ = invstd·Σdy(x − mean) and dβ = Σdy, summed in Double and rounded once,
            // onto zeros: 3 roundings relative to Σ|dy·x̂| + |mean|·invstd·Σ|dy| (the float
            // invstd and mean), 1 relative to Σ|dy|. L is affine in γ and in β: no truncation.
            let sums = (0..<tc.c).map { ch -> (dyXhat: Double, dy: Double) in
                let idx = channelIndices(tc.n, tc.c, tc.hw, ch)
                let s = Double(invstd[ch]), mu = Double(mean[ch])
                return (idx.reduce(0.0) { $0 + abs(w[$1] * (xd[$1] - mu) * s) }, idx.reduce(0.0) { $0 + abs(w[$1]) })
            }
            let fdG = centralDifferences(gd, at: Array(gd.indices), h: h) { loss(xd, $0, bd) }
            assertWithinBounds(dg, fdG, (0..<tc.c).map { ch in
                roundingBound(3) * (sums[ch].dyXhat + abs(Double(mean[ch])) * Double(invstd[ch]) * sums[ch].dy) + fdError
            }, "dgamma \(tc)")
            let fdB = centralDifferences(bd, at: Array(bd.indices), h: h) { loss(xd, gd, $0) }
            assertWithinBounds(db, fdB, (0..<tc.c).map { roundingBound(1) * sums[$0].dy + fdError }, "dbeta \(tc)")
        }
    }

    func testTrainBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkTrainBackAgreesWithFiniteDifferences() } }
    func testTrainBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkTrainBackAgreesWithFiniteDifferences() } }
    func testTrainBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkTrainBackAgreesWithFiniteDifferences() } }

    // MARK: Arguments

    func testBackRejectsBadArguments() {
        let x = [Float](repeating: 1, count: 8), s = [Float](repeating: 1, count: 2)
        var y = x, m = s, v = s, dg = s, db = s
        var p = params(2, 2, 2)
        XCTAssertEqual(ek_batchnorm_back_f32(&p, x, s, nil, &y), EK_OK)
        XCTAssertEqual(ek_batchnorm_back_f32(nil, x, s, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_back_f32(&p, nil, s, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_back_f32(&p, x, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_back_f32(&p, x, s, nil, nil), EK_ERR_INVALID_ARGUMENT)
        for mutate in [{ (q: inout ek_batchnorm_params) in q.n = 0 }, { $0.c = -1 }, { $0.hw = 0 },
                       { $0.eps = -1 }, { $0.eps = .nan }, { $0.ith = 1; $0.nth = 1 }, { $0.nth = 0 }] {
            var bad = p
            mutate(&bad)
            XCTAssertEqual(ek_batchnorm_back_f32(&bad, x, s, nil, &y), EK_ERR_INVALID_ARGUMENT)
        }

        XCTAssertEqual(ek_batchnorm_train_forward_f32(&p, x, nil, nil, &y, &m, &v), EK_OK)
        XCTAssertEqual(ek_batchnorm_train_back_f32(&p, x, x, m, v, nil, &y, &dg, &db), EK_OK)
        XCTAssertEqual(ek_batchnorm_train_forward_f32(nil, x, nil, nil, &y, &m, &v), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_forward_f32(&p, nil, nil, nil, &y, &m, &v), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_forward_f32(&p, x, nil, nil, nil, &m, &v), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_forward_f32(&p, x, nil, nil, &y, nil, &v), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_forward_f32(&p, x, nil, nil, &y, &m, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_back_f32(nil, x, x, m, v, nil, &y, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_back_f32(&p, nil, x, m, v, nil, &y, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_back_f32(&p, x, nil, m, v, nil, &y, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_back_f32(&p, x, x, nil, v, nil, &y, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_back_f32(&p, x, x, m, nil, nil, &y, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_batchnorm_train_back_f32(&p, x, x, m, v, nil, nil, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        for mutate in [{ (q: inout ek_batchnorm_params) in q.n = 0 }, { $0.c = -1 }, { $0.hw = 0 },
                       { $0.eps = -1 }, { $0.eps = .nan }, { $0.activation = ek_activation(rawValue: 4) }] {
            var bad = p
            mutate(&bad)
            XCTAssertEqual(ek_batchnorm_train_forward_f32(&bad, x, nil, nil, &y, &m, &v), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(ek_batchnorm_train_back_f32(&bad, x, x, m, v, nil, &y, &dg, &db), EK_ERR_INVALID_ARGUMENT)
        }
        var shares = p
        shares.ith = 5; shares.nth = 2
        XCTAssertEqual(ek_batchnorm_train_forward_f32(&shares, x, nil, nil, &y, &m, &v), EK_OK, "ith/nth ignored")
    }
}
