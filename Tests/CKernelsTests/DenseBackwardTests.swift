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

    /// Against the definition, the adjoint identity with ek_linear_f32, and central
    /// differences of Σ dy·linear(x) in Double.
    func testLinearBackInput() {
        var rng = SeededGenerator(seed: 600)
        for (n, inF, outF) in shapes {
            let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), dy = rng.floats(n * outF)
            var expected = [Double](repeating: 0, count: n * inF)
            for i in 0..<n { for o in 0..<outF { for k in 0..<inF { expected[i * inF + k] += Double(dy[i * outF + o]) * Double(w[o * inF + k]) } } }
            compareWithScalar({ backInput(n, inF, outF, dy, w) },
                              check: { ref, got, isa in assertBitEqual(got, ref, "isa \(isa.rawValue)") })
            let dx = backInput(n, inF, outF, dy, w)
            assertGradient(dx, expected, rtol: 1e-5, atol: 1e-6, "\(n)x\(inF)->\(outF)")
            var y = [Float](repeating: .nan, count: n * outF)
            XCTAssertEqual(ek_linear_f32(Int64(n), Int64(inF), Int64(outF), x, w, nil, &y), EK_OK)
            XCTAssertEqual(dotD(dx, x), dotD(dy, y), accuracy: 1e-5 * max(1, absDotD(dy, y)))

            let (xd, wd, bd, dyd) = (x.map(Double.init), w.map(Double.init), b.map(Double.init), dy.map(Double.init))
            let at = sampleIndices(x.count, limit: 30, &rng)
            let fd = centralDifferences(xd, at: at, h: 1e-3) { dotD(dyd, self.linearD(n, inF, outF, $0, wd, bd)) }
            assertGradient(pick(dx, at), fd, rtol: 1e-5, atol: 1e-6, "FD \(n)x\(inF)->\(outF)")
        }
    }

    /// Accumulates onto dweight / dbias, against the definition and central differences with
    /// respect to the weights and the bias; NULL dbias leaves the weight gradient alone.
    func testLinearBackWeightAccumulates() {
        var rng = SeededGenerator(seed: 601)
        for (n, inF, outF) in shapes {
            let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), dy = rng.floats(n * outF)
            let w0 = rng.floats(outF * inF), b0 = rng.floats(outF)
            var dw = w0, db = b0
            XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dw, &db), EK_OK)
            var ew = w0.map(Double.init), eb = b0.map(Double.init)
            for i in 0..<n {
                for o in 0..<outF {
                    eb[o] += Double(dy[i * outF + o])
                    for k in 0..<inF { ew[o * inF + k] += Double(dy[i * outF + o]) * Double(x[i * inF + k]) }
                }
            }
            assertGradient(dw, ew, rtol: 1e-5, atol: 1e-6, "dweight \(n)x\(inF)->\(outF)")
            assertGradient(db, eb, rtol: 1e-6, atol: 1e-6, "dbias \(n)x\(inF)->\(outF)")
            compareWithScalar({
                var dw = w0, db = b0
                XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dw, &db), EK_OK)
                return dw + db
            }, check: { ref, got, isa in assertBitEqual(got, ref, "isa \(isa.rawValue)") })

            var dwOnly = w0
            XCTAssertEqual(ek_linear_back_weight_f32(Int64(n), Int64(inF), Int64(outF), x, dy, &dwOnly, nil), EK_OK)
            assertBitEqual(dwOnly, dw, "no dbias")

            let (xd, wd, bd, dyd) = (x.map(Double.init), w.map(Double.init), b.map(Double.init), dy.map(Double.init))
            let at = sampleIndices(w.count, limit: 30, &rng)
            let fdW = centralDifferences(wd, at: at, h: 1e-3) { dotD(dyd, self.linearD(n, inF, outF, xd, $0, bd)) }
            assertGradient(pick(dw, at).enumerated().map { $1 - w0[at[$0]] }, fdW, rtol: 1e-5, atol: 1e-6, "FD dweight")
            let fdB = centralDifferences(bd, at: Array(bd.indices), h: 1e-3) { dotD(dyd, self.linearD(n, inF, outF, xd, wd, $0)) }
            assertGradient(zip(db, b0).map { $0 - $1 }, fdB, rtol: 1e-5, atol: 1e-6, "FD dbias")
        }
    }

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

    /// dx = y·(dy − Σ dy·y) against Double, the same bits on every ISA, central differences
    /// (h = 1e-4) of Σ w·softmax(x) through the real forward's output, and aliasing.
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
            assertGradient(dx, expected, rtol: 1e-6, atol: 1e-7, "cols \(cols)")

            // The forward's own output feeds the backward, so compare with the Double
            // softmax's gradient at a tolerance covering the forward's float rounding.
            let xd = x.map(Double.init), dyd = dy.map(Double.init)
            let at = sampleIndices(x.count, limit: 30, &rng)
            let fd = centralDifferences(xd, at: at, h: 1e-4) { dotD(dyd, self.softmaxD(rows, cols, $0)) }
            assertGradient(pick(dx, at), fd, rtol: 1e-5, atol: 1e-7, "FD cols \(cols)")

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
