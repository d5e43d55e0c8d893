import CKernels
import TestSupport
import XCTest

final class DenseTests: KernelTestCase {
    func testLinearMatchesNaiveReference() {
        var rng = SeededGenerator(seed: 50)
        for (n, inF, outF) in [(1, 1, 1), (3, 17, 5), (4, 512, 10), (2, 33, 1000)] {
            let x = rng.floats(n * inF), weight = rng.floats(outF * inF), bias = rng.floats(outF)
            for withBias in [true, false] {
                var expected = [Float](repeating: 0, count: n * outF)
                for i in 0..<n {
                    for o in 0..<outF {
                        var acc = withBias ? Double(bias[o]) : 0
                        for k in 0..<inF { acc += Double(x[i * inF + k]) * Double(weight[o * inF + k]) }
                        expected[i * outF + o] = Float(acc)
                    }
                }
                for isa in supportedISAs() {
                    _ = ek_set_isa(isa)
                    var y = [Float](repeating: .nan, count: n * outF)
                    let st = withOptionalPointer(withBias ? bias : nil) {
                        ek_linear_f32(Int64(n), Int64(inF), Int64(outF), x, weight, $0, &y)
                    }
                    XCTAssertEqual(st, EK_OK)
                    assertClose(y, expected, rtol: 1e-4, atol: 1e-5, "\(n)x\(inF)->\(outF) bias \(withBias)")
                }
            }
        }
    }

    private func naiveSoftmax(_ rows: Int, _ cols: Int, _ x: [Float]) -> [Float] {
        var y = [Float]()
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            y += e.map { Float($0 / s) }
        }
        return y
    }

    private func softmax(_ rows: Int, _ cols: Int, _ x: [Float]) -> [Float] {
        var y = [Float](repeating: .nan, count: x.count)
        XCTAssertEqual(ek_softmax_f32(Int64(rows), Int64(cols), x, &y), EK_OK)
        return y
    }

    func testSoftmaxMatchesDefinitionAndScalarPath() {
        var rng = SeededGenerator(seed: 51)
        for cols in tailSizes() {
            let rows = rng.int(1...3)
            for range: Range<Float> in [-1..<1, -30..<30, -1000..<1000] {
                let x = rng.floats(rows * cols, in: range)
                let expected = naiveSoftmax(rows, cols, x)
                compareWithScalar({ softmax(rows, cols, x) }, check: { ref, got, isa in
                    assertClose(got, ref, rtol: 1e-6, atol: 1e-30, "cols \(cols) range \(range) isa \(isa.rawValue)")
                })
                // Against exact arithmetic even the float subtraction x - max contributes
                // |x - max| * 2^-24 relative error (up to ~5e-6 before exp underflows).
                for isa in supportedISAs() {
                    _ = ek_set_isa(isa)
                    assertClose(softmax(rows, cols, x), expected, rtol: 1e-5, atol: 1e-30, "cols \(cols) range \(range)")
                }
            }
        }
    }

    func testSoftmaxLargeMagnitudesSpecialValuesAndAliasing() {
        let x: [Float] = [1e30, 1e30 - 1e24, -1e30, 88, 89, 90, -.infinity, 0]
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            // Max-subtracted: no overflow even for 1e30.
            let y = softmax(1, x.count, x)
            XCTAssertFalse(y.contains { $0.isNaN }, "\(y)")
            XCTAssertEqual(y.reduce(0, +), 1, accuracy: 1e-6)
            XCTAssertEqual(y[6], 0)
            // A row of -inf except one finite element.
            assertClose(softmax(1, 20, [Float](repeating: -.infinity, count: 19) + [3]),
                        [Float](repeating: 0, count: 19) + [1], rtol: 0, atol: 0)
            // NaN propagates to the whole row.
            XCTAssertTrue(softmax(1, 3, [1, .nan, 2]).allSatisfy { $0.isNaN })
            // In place.
            var z: [Float] = (0..<37).map { Float($0) * 0.7 - 9 }
            let expected = naiveSoftmax(1, 37, z)
            z.withUnsafeMutableBufferPointer { p in
                XCTAssertEqual(ek_softmax_f32(1, 37, p.baseAddress, p.baseAddress), EK_OK)
            }
            assertClose(z, expected, rtol: 2e-6, atol: 1e-30)
        }
    }

    func testExpRangeAgainstLibm() {
        // Softmax of [t, 0] is 1 / (1 + e^-t): sweeps the SIMD exp over its whole range.
        var x = [Float]()
        var t: Float = -110
        while t <= 110 { x += [t, 0]; t += 0.173 }
        let rows = x.count / 2
        let expected = naiveSoftmax(rows, 2, x)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            assertClose(softmax(rows, 2, x), expected, rtol: 2e-6, atol: 1e-37)
        }
    }

    func testRejectsBadArguments() {
        let x = [Float](repeating: 1, count: 4)
        var y = x
        XCTAssertEqual(ek_linear_f32(0, 2, 2, x, x, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_f32(2, 0, 2, x, x, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_f32(2, 2, -1, x, x, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_f32(2, 2, 2, nil, x, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_f32(2, 2, 2, x, nil, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_linear_f32(2, 2, 2, x, x, nil, nil), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_f32(0, 4, x, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_f32(1, 0, x, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_f32(1, 4, nil, &y), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_softmax_f32(1, 4, x, nil), EK_ERR_INVALID_ARGUMENT)
    }
}
