import CKernels
import TestSupport
import XCTest

final class DenseBackwardTests: KernelTestCase {
    private let shapes: [(n: Int, inF: Int, outF: Int)] = [(1, 1, 1), (3, 17, 5), (4, 64, 10), (2, 33, 100)]

    private func linearD(_ n: Int, _ inF: Int, _ outF: Int, _ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
        var y = [Double](repeating: 0, count: n * outF)
        for i in 0..<n {
            for o in 0..<outF {
                var acc = b[o]
                for k in 0..<inF { acc += x[i * inF + k] * w[o * inF + k] }
                y[i * outF + o] = acc
            }
        }
        return y
    }

    private func backInput(_ n: Int, _ inF: Int, _ outF: Int, _ dy: [Float], _ w: [Float]) -> [Float] {
        var dx = [Float](repeating: .nan, count: n * inF)
        XCTAssertEqual(ek_linear_back_input_f32(Int64(n), Int64(inF), Int64(outF), dy, w, &dx), EK_OK)
        return dx
    }

    /// Against the definition and the adjoint identity with ek_linear_f32.
    func testLinearBackInput() {
        var rng = SeededGenerator(seed: 600)
        for (n, inF, outF) in shapes {
            let x = rng.floats(n * inF), w = rng.floats(outF * inF), dy = rng.floats(n * outF)
            var expected = [Double](repeating: 0, count: n * inF), scale = expected
            for i in 0..<n {
                for o in 0..<outF {
                    for k in 0..<inF {
                        expected[i * inF + k] += Double(dy[i * outF + o]) * Double(w[o * inF + k])
                        scale[i * inF + k] += abs(Double(dy[i * outF + o]) * Double(w[o * inF + k]))
                    }
                }
            }
            compareWithScalar({ backInput(n, inF, outF, dy, w) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "isa \(isa.rawValue)") })
            let dx = backInput(n, inF, outF, dy, w)
            // A GEMM over the outF outputs: γ(outF)·|dy|·|W|.
            assertWithinBounds(dx, expected, scale.map { roundingBound(outF) * $0 }, "\(n)x\(inF)->\(outF)")
            var y = [Float](repeating: .nan, count: n * outF)
            XCTAssertEqual(ek_linear_f32(Int64(n), Int64(inF), Int64(outF), x, w, nil, &y), EK_OK)
            // ⟨dx, x⟩ errs by Σ|x|·γ(outF)·|dy||W|, ⟨dy, y⟩ by Σ|dy|·γ(inF)·|W||x| (the forward's
            // sums), Double's dot products by γ_Double(count)·Σ|terms|; both magnitudes are Σ|dy||W||x|.
            let magnitude = (0..<n).reduce(0.0) { sum, i in
                sum + (0..<outF).reduce(0.0) { s, o in
                    s + (0..<inF).reduce(0.0) { $0 + abs(Double(dy[i * outF + o]) * Double(w[o * inF + $1]) * Double(x[i * inF + $1])) }
                }
            }
            let bound = (roundingBound(outF) + roundingBound(inF) + roundingBound(x.count + y.count, unit: doubleRoundoff)) * magnitude
            XCTAssertEqual(dotD(dx, x), dotD(dy, y), accuracy: bound, "\(n)x\(inF)->\(outF)")
        }
    }

    /// Central differences of Σ dy·linear(x) in Double (exact but for Double's rounding:
    /// the function is linear).
    private func checkLinearBackInputAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 603)
        for (n, inF, outF) in shapes {
            let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), dy = rng.floats(n * outF)
            let (xd, wd, bd, dyd) = (x.map(Double.init), w.map(Double.init), b.map(Double.init), dy.map(Double.init))
            let h = 1e-3
            let at = sampleIndices(x.count, limit: 30, &rng)
            let fd = centralDifferences(xd, at: at, h: h) { dotD(dyd, self.linearD(n, inF, outF, $0, wd, bd)) }
            let magnitude = dotD(dyd.map(abs), linearD(n, inF, outF, xd.map { abs($0) + h }, wd.map(abs), bd.map(abs)))
            let fdError = centralDifferenceRounding(magnitude: magnitude, roundings: inF + 1 + dy.count + 1, h: h)
            // The kernel: a GEMM over the outF outputs, γ(outF)·|dy|·|W|.
            var scale = [Double](repeating: 0, count: x.count)
            for i in 0..<n { for o in 0..<outF { for k in 0..<inF { scale[i * inF + k] += abs(dyd[i * outF + o] * wd[o * inF + k]) } } }
            assertWithinBounds(pick(backInput(n, inF, outF, dy, w), at), fd, at.map { roundingBound(outF) * scale[$0] + fdError },
                               "FD \(n)x\(inF)->\(outF)")
        }
    }

    func testLinearBackInputAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkLinearBackInputAgreesWithFiniteDifferences() } }
    func testLinearBackInputAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkLinearBackInputAgreesWithFiniteDifferences() } }
    func testLinearBackInputAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkLinearBackInputAgreesWithFiniteDifferences() } }

    /// Accumulates onto dweight / dbias, against the definition; NULL dbias leaves the weight
    /// gradient alone.
    func testLinearBackWeightAccumulates() {
        var rng = SeededGenerator(seed: 601)
        for (n, inF, outF) in shapes {
            let x = rng.floats(n * inF), dy = rng.floats(n * outF)
            let w0 = rng.floats(outF * inF), b0 = rng.floats(outF)
            var dw = w0, db = b0
            XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dw, &db), EK_OK)
            var ew = w0.map(Double.init), eb = b0.map(Double.init)
            var sw = w0.map { Double(abs($0)) }, sb = b0.map { Double(abs($0)) }
            for i in 0..<n {
                for o in 0..<outF {
                    eb[o] += Double(dy[i * outF + o])
                    sb[o] += abs(Double(dy[i * outF + o]))
                    for k in 0..<inF {
                        ew[o * inF + k] += Double(dy[i * outF + o]) * Double(x[i * inF + k])
                        sw[o * inF + k] += abs(Double(dy[i * outF + o]) * Double(x[i * inF + k]))
                    }
                }
            }
            // A GEMM over the n rows added onto what dweight held, dbias one addition per row:
            // n + 1 roundings of terms at most |w0| + Σ|dy·x| (|b0| + Σ|dy|).
            assertWithinBounds(dw, ew, sw.map { roundingBound(n + 1) * $0 }, "dweight \(n)x\(inF)->\(outF)")
            assertWithinBounds(db, eb, sb.map { roundingBound(n + 1) * $0 }, "dbias \(n)x\(inF)->\(outF)")
            compareWithScalar({
                var dw = w0, db = b0
                XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dw, &db), EK_OK)
                return dw + db
            }, check: { ref, got, isa in assertBitEqual(got, ref, "isa \(isa.rawValue)") })

            var dwOnly = w0
            XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dwOnly, nil), EK_OK)
            assertBitEqual(dwOnly, dw, "no dbias")
        }
    }

    /// Central differences with respect to the weights and the bias (onto zeros).
    private func checkLinearBackWeightAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 604)
        for (n, inF, outF) in shapes {
            let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), dy = rng.floats(n * outF)
            var dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: outF)
            XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dw, &db), EK_OK)
            let (xd, wd, bd, dyd) = (x.map(Double.init), w.map(Double.init), b.map(Double.init), dy.map(Double.init))
            // L is linear in W and in b: Double's rounding only, terms at most |dy|·((|W| + h)|x| + |b| + h).
            let h = 1e-3
            let magnitude = dotD(dyd.map(abs), linearD(n, inF, outF, xd.map(abs), wd.map { abs($0) + h }, bd.map { abs($0) + h }))
            let fdError = centralDifferenceRounding(magnitude: magnitude, roundings: inF + 1 + dy.count + 1, h: h)
            // The kernel: n roundings (and one onto zero) of Σ|dy·x|, of Σ|dy| for the bias.
            var sw = [Double](repeating: 0, count: w.count), sb = [Double](repeating: 0, count: outF)
            for i in 0..<n {
                for o in 0..<outF {
                    sb[o] += abs(dyd[i * outF + o])
                    for k in 0..<inF { sw[o * inF + k] += abs(dyd[i * outF + o] * xd[i * inF + k]) }
                }
            }
            let at = sampleIndices(w.count, limit: 30, &rng)
            let fdW = centralDifferences(wd, at: at, h: h) { dotD(dyd, self.linearD(n, inF, outF, xd, $0, bd)) }
            assertWithinBounds(pick(dw, at), fdW, at.map { roundingBound(n + 1) * sw[$0] + fdError }, "FD dweight")
            let fdB = centralDifferences(bd, at: Array(bd.indices), h: h) { dotD(dyd, self.linearD(n, inF, outF, xd, wd, $0)) }
            assertWithinBounds(db, fdB, sb.map { roundingBound(n + 1) * $0 + fdError }, "FD dbias")
        }
    }

    func testLinearBackWeightAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkLinearBackWeightAgreesWithFiniteDifferences() } }
    func testLinearBackWeightAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkLinearBackWeightAgreesWithFiniteDifferences() } }
    func testLinearBackWeightAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkLinearBackWeightAgreesWithFiniteDifferences() } }

    private func softmaxD(_ rows: Int, _ cols: Int, _ x: [Double]) -> [Double] {
        var y = [Double]()
        for r in 0..<rows {
            let row = Array(x[(r * cols)..<((r + 1) * cols)])
            let m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            y += e.map { $0 / s }
        }
        return y
    }

    private func softmaxBack(_ rows: Int, _ cols: Int, _ y: [Float], _ dy: [Float]) -> [Float] {
        var dx = [Float](repeating: .nan, count: y.count)
        XCTAssertEqual(ek_softmax_back_f32(Int64(rows), Int64(cols), y, dy, &dx), EK_OK)
        return dx
    }

    /// |y|·(|dy| + Σ|dy|·|y|) per row: the magnitude of dx = y·(dy − Σ dy·y).
    private func softmaxBackScale(_ rows: Int, _ cols: Int, _ y: [Float], _ dy: [Float]) -> [Double] {
        (0..<rows).flatMap { r -> [Double] in
            let range = (r * cols)..<((r + 1) * cols)
            let dot = range.reduce(0.0) { $0 + abs(Double(dy[$1]) * Double(y[$1])) }
            return range.map { abs(Double(y[$0])) * (abs(Double(dy[$0])) + dot) }
        }
    }

    /// dx = y·(dy − Σ dy·y) against Double from the same y, the same bits on every ISA, and aliasing.
    func testSoftmaxBack() {
        var rng = SeededGenerator(seed: 602)
        for cols in [1, 2, 7, 16, 17, 33, 100, 1000] {
            let rows = rng.int(1...3)
            let x = rng.floats(rows * cols, in: -4..<4), dy = rng.floats(rows * cols)
            var y = [Float](repeating: .nan, count: x.count)
            XCTAssertEqual(ek_softmax_f32(Int64(rows), Int64(cols), x, &y), EK_OK)
            var expected = [Double]()
            for r in 0..<rows {
                let range = (r * cols)..<((r + 1) * cols)
                let dot = dotD(Array(dy[range]), Array(y[range]))
                expected += range.map { Double(y[$0]) * (Double(dy[$0]) - dot) }
            }
            compareWithScalar({ softmaxBack(rows, cols, y, dy) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "cols \(cols) isa \(isa.rawValue)") })
            let dx = softmaxBack(rows, cols, y, dy)
            // The dot product (cols fused multiply-adds), the subtraction and the product:
            // γ(cols + 2)·|y|·(|dy| + Σ|dy·y|).
            assertWithinBounds(dx, expected, softmaxBackScale(rows, cols, y, dy).map { roundingBound(cols + 2) * $0 }, "cols \(cols)")

            var inPlace = dy
            inPlace.withUnsafeMutableBufferPointer { b in
                XCTAssertEqual(ek_softmax_back_f32(Int64(rows), Int64(cols), y, b.baseAddress, b.baseAddress), EK_OK)
            }
            assertBitEqual(inPlace, dx, "dx over dy")
            var overY = y
            overY.withUnsafeMutableBufferPointer { b in
                XCTAssertEqual(ek_softmax_back_f32(Int64(rows), Int64(cols), b.baseAddress, dy, b.baseAddress), EK_OK)
            }
            assertBitEqual(overY, dx, "dx over y")
        }
    }

    /// Central differences (h = 1e-4) of Σ w·softmax(x) in Double against the backward fed
    /// the real forward's output, as the graph does.
    private func checkSoftmaxBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 605)
        for cols in [1, 2, 7, 16, 17, 33, 100, 1000] {
            let rows = rng.int(1...3)
            let x = rng.floats(rows * cols, in: -4..<4), dy = rng.floats(rows * cols)
            var y = [Float](repeating: .nan, count: x.count)
            XCTAssertEqual(ek_softmax_f32(Int64(rows), Int64(cols), x, &y), EK_OK)
            let xd = x.map(Double.init), dyd = dy.map(Double.init)
            let h = 1e-4
            let at = sampleIndices(x.count, limit: 30, &rng)
            let fd = centralDifferences(xd, at: at, h: h) { dotD(dyd, self.softmaxD(rows, cols, $0)) }
            // Truncation: along one coordinate each softmax output is a logistic function (times
            // a constant; those constants sum to at most 1 over the other outputs), whose third
            // derivative is at most 1/8: |∂³L/∂x³| ≤ max|dy|/4, times h²/6. Double's rounding:
            // exp, x − max, the row's sum and a division per output, then the sum over outputs,
            // of terms at most |dy|·y ≤ |dy|.
            let truncation = (dy.map { Double(abs($0)) }.max() ?? 0) / 4 * h * h / 6
            let fdError = centralDifferenceRounding(magnitude: dyd.map(abs).reduce(0, +), roundings: cols + 4 + dy.count, h: h)
            // The kernel's own cols + 2 roundings, and the forward's y it is fed: x − max errs by
            // u·|x − max| ≤ 8u relative in exp, exp by 2 ulp, the sum by cols roundings, the
            // reciprocal and the product by one each (cols + 12 relative to y), and y enters
            // dx twice: cols + 2 + 2·(cols + 12) relative to |y|·(|dy| + Σ|dy·y|).
            let scale = softmaxBackScale(rows, cols, y, dy)
            let n = cols + 2 + 2 * (cols + 12)
            assertWithinBounds(pick(softmaxBack(rows, cols, y, dy), at), fd,
                               at.map { roundingBound(n) * scale[$0] + truncation + fdError }, "FD cols \(cols)")
        }
    }

    func testSoftmaxBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkSoftmaxBackAgreesWithFiniteDifferences() } }
    func testSoftmaxBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkSoftmaxBackAgreesWithFiniteDifferences() } }
    func testSoftmaxBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkSoftmaxBackAgreesWithFiniteDifferences() } }

    func testRejectsBadArguments() {
        let a = [Float](repeating: 1, count: 4)
        var out = a, out2 = a
        XCTAssertEqual(ek_linear_back_input_f32(2, 2, 2, a, a, &out), EK_OK)
        XCTAssertEqual(ek_linear_back_weight_f32(2, 2, 2, a, a, &out, &out2), EK_OK)
        XCTAssertEqual(ek_softmax_back_f32(2, 2, a, a, &out), EK_OK)
        out = a
        for (n, i, o) in [(0, 2, 2), (2, 0, 2), (2, 2, -1)] {
            XCTAssertEqual(ek_linear_back_input_f32(Int64(n), Int64(i), Int64(o), a, a, &out), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(i), Int64(o), a, a, &out, nil), EK_ERR_INVALID_ARGUMENT)
        }
        XCTAssertEqual(ek_linear_back_input_f32(2, 2, 2, nil, a, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_back_input_f32(2, 2, 2, a, nil, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_back_input_f32(2, 2, 2, a, a, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_back_weight_f32(2, 2, 2, nil, a, &out, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_back_weight_f32(2, 2, 2, a, nil, &out, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_back_weight_f32(2, 2, 2, a, a, nil, &out2), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_back_input_f32(Int64(Int32.max) + 1, 1, 1, a, a, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_back_f32(0, 2, a, a, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_back_f32(2, 0, a, a, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_back_f32(2, 2, nil, a, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_back_f32(2, 2, a, nil, &out), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_back_f32(2, 2, a, a, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(out, a, "a rejected call writes nothing")
    }
}
