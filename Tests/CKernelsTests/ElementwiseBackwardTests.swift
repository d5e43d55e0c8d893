import CKernels
import TestSupport
import XCTest

final class ElementwiseBackwardTests: KernelTestCase {
    private func specials() -> [Float] { [.nan, -.nan, .infinity, -.infinity, 0, -0.0, 1e-40, -1e-40, 3, -3] }

    private typealias BackFn = (Int64, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int32, Int32) -> ek_status
    private let plain: BackFn = { ek_relu_back_f32($0, $1, $2, $3, $4, $5) }
    private let guided: BackFn = { ek_relu_back_guided_f32($0, $1, $2, $3, $4, $5) }

    private func run(_ fn: BackFn, _ y: [Float], _ dy: [Float], ith: Int = 0, nth: Int = 1, into dx: inout [Float]) {
        XCTAssertEqual(fn(Int64(y.count), y, dy, &dx, Int32(ith), Int32(nth)), EK_OK)
    }
    private func run(_ fn: BackFn, _ y: [Float], _ dy: [Float]) -> [Float] {
        var dx = [Float](repeating: 7, count: y.count)
        run(fn, y, dy, into: &dx)
        return dx
    }

    /// The two rules' definitions, element by element: plain passes dy where y > 0, guided
    /// passes max(dy, 0) there (NaN dy propagates, -0 stays -0); elsewhere, and where y is
    /// NaN, the result is +0.
    private func plainDefinition(_ y: Float, _ g: Float) -> Float { y > 0 ? g : 0 }
    private func guidedDefinition(_ y: Float, _ g: Float) -> Float { y > 0 ? (g < 0 ? 0 : g) : 0 }

    /// Every tail length with special values mixed in: every ISA gives the scalar path's bits,
    /// and the scalar path gives the definitions' bits.
    func testReluBackRulesMatchDefinitionsOnEveryISA() {
        var rng = SeededGenerator(seed: 700)
        for count in tailSizes() {
            var y = rng.spicyFloats(count).map { max($0, 0) }, dy = rng.spicyFloats(count)
            for (i, v) in specials().enumerated() where i < count { y[(i * 7) % count] = v; dy[(i * 5) % count] = v }
            for (name, fn, def) in [("plain", plain, plainDefinition), ("guided", guided, guidedDefinition)] {
                compareWithScalar({ run(fn, y, dy) }, check: { ref, got, isa in
                    assertBitEqual(got, ref, "\(name) count \(count) isa \(isa.rawValue)")
                })
                for isa in supportedISAs() {
                    _ = ek_set_isa(isa)
                    assertBitEqual(run(fn, y, dy), (0..<count).map { def(y[$0], dy[$0]) }, "\(name) count \(count) isa \(isa.rawValue)")
                }
            }
        }
    }

    /// The plain rule is ReLU's gradient: central differences of Σ w·relu(x) in Double at
    /// inputs at least 0.01 from the kink, with h = 1e-3 (exact for a piecewise-linear
    /// function away from its kink, but for Double's rounding of the sum over elements), fed
    /// the forward's own output y = relu(x) or the input x. The kernel copies dy or writes
    /// zero: no rounding of its own.
    private func checkReluBackAgreesWithFiniteDifferences() {
        var rng = SeededGenerator(seed: 701)
        let x = rng.floats(301, in: -2..<2).map { abs($0) < 0.01 ? $0 + 0.05 : $0 }
        let w = rng.floats(x.count).map(Double.init)
        var y = [Float](repeating: .nan, count: x.count)
        XCTAssertEqual(ek_relu_f32(Int64(x.count), x, &y, 0, 1), EK_OK)
        let h = 1e-3
        let fd = centralDifferences(x.map(Double.init), at: Array(x.indices), h: h) { v in
            dotD(w, v.map { max($0, 0) })
        }
        let fdError = centralDifferenceRounding(magnitude: zip(w, x).reduce(0) { $0 + abs($1.0) * (abs(Double($1.1)) + h) },
                                                roundings: x.count + 1, h: h)
        let bounds = [Double](repeating: fdError, count: x.count)
        assertWithinBounds(run(plain, y, w.map { Float($0) }), fd, bounds, "from the output")
        assertWithinBounds(run(plain, x, w.map { Float($0) }), fd, bounds, "from the input")
    }

    func testReluBackAgreesWithFiniteDifferencesScalar() throws { try atLevel(EK_ISA_SCALAR) { checkReluBackAgreesWithFiniteDifferences() } }
    func testReluBackAgreesWithFiniteDifferencesAVX2() throws { try atLevel(EK_ISA_AVX2) { checkReluBackAgreesWithFiniteDifferences() } }
    func testReluBackAgreesWithFiniteDifferencesAVX512() throws { try atLevel(EK_ISA_AVX512) { checkReluBackAgreesWithFiniteDifferences() } }

    // MARK: Rescale

    private func rescale(_ x: [Float], _ xr: [Float], _ y: [Float], _ yr: [Float], _ dy: [Float], eps: Float = 1e-10,
                         ith: Int = 0, nth: Int = 1, into dx: inout [Float]) {
        XCTAssertEqual(ek_relu_back_rescale_f32(Int64(x.count), x, xr, y, yr, dy, &dx, eps, Int32(ith), Int32(nth)), EK_OK)
    }
    private func rescale(_ x: [Float], _ xr: [Float], _ y: [Float], _ yr: [Float], _ dy: [Float], eps: Float = 1e-10) -> [Float] {
        var dx = [Float](repeating: 7, count: x.count)
        rescale(x, xr, y, yr, dy, eps: eps, into: &dx)
        return dx
    }

    /// Captum's Rescale rule: dy·Δy/Δx where |Δx| > eps, else the gradient dy·[x > 0]. The
    /// inputs mix ordinary pairs, Δx = 0, |Δx| just below, at and just above eps, and pairs
    /// on both sides of the kink.
    func testRescaleMatchesDefinitionOnEveryISA() {
        var rng = SeededGenerator(seed: 702)
        for count in tailSizes() {
            for eps: Float in [1e-10, 1e-3] {
                var x = rng.floats(count, in: -2..<2), xr = rng.floats(count, in: -2..<2)
                for i in 0..<count {
                    switch i % 6 {
                    case 1: xr[i] = x[i]                                   // Δx = 0
                    case 2: xr[i] = x[i] - eps / 2                         // below eps
                    case 3: xr[i] = 0; x[i] = eps                          // exactly eps: the gradient
                    case 4: xr[i] = 0; x[i] = -eps * 1.5                   // just above eps, x < 0
                    default: break
                    }
                }
                let y = x.map { max($0, 0) }, yr = xr.map { max($0, 0) }
                let dy = rng.spicyFloats(count)
                let expected = (0..<count).map { i -> Float in
                    let dIn = x[i] - xr[i], dOut = y[i] - yr[i]
                    return abs(dIn) > eps ? dy[i] * dOut / dIn : (x[i] > 0 ? dy[i] : 0)
                }
                compareWithScalar({ rescale(x, xr, y, yr, dy, eps: eps) }, check: { ref, got, isa in
                    assertBitEqual(got, ref, "count \(count) eps \(eps) isa \(isa.rawValue)")
                })
                for isa in supportedISAs() {
                    _ = ek_set_isa(isa)
                    assertBitEqual(rescale(x, xr, y, yr, dy, eps: eps), expected, "count \(count) eps \(eps) isa \(isa.rawValue)")
                }
            }
        }
    }

    /// The point of the rule: a single ReLU's multipliers satisfy summation-to-delta,
    /// Σ dx·Δx = Σ dy·Δy (exactly, up to rounding, wherever the ratio branch is taken), and
    /// equal the ordinary gradient when input and reference lie on the same side of the kink.
    func testRescaleSummationToDeltaAndGradientOnOneSide() {
        var rng = SeededGenerator(seed: 703)
        let x = rng.floats(500, in: -2..<2), xr = rng.floats(500, in: -2..<2)
        let y = x.map { max($0, 0) }, yr = xr.map { max($0, 0) }
        let dy = rng.floats(500)
        let dx = rescale(x, xr, y, yr, dy)
        let lhs = (0..<500).reduce(0.0) { $0 + Double(dx[$1]) * (Double(x[$1]) - Double(xr[$1])) }
        let rhs = (0..<500).reduce(0.0) { $0 + Double(dy[$1]) * (Double(y[$1]) - Double(yr[$1])) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-5 * max(1, abs(rhs)))
        let sameSide = (0..<500).filter { (x[$0] > 0) == (xr[$0] > 0) }
        XCTAssertGreaterThan(sameSide.count, 100)
        let gradient = run(plain, y, dy)
        assertClose(pick(dx, sameSide), pick(gradient, sameSide), rtol: 1e-6, atol: 1e-7)
    }

    // MARK: Aliasing, shares, arguments

    func testOutputsMayAliasDy() {
        var rng = SeededGenerator(seed: 704)
        let y = rng.floats(77).map { max($0, 0) }, dy0 = rng.floats(77)
        let x = rng.floats(77), xr = rng.floats(77)
        let yr = xr.map { max($0, 0) }, yx = x.map { max($0, 0) }
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            for (name, fn) in [("plain", plain), ("guided", guided)] {
                var d = dy0
                d.withUnsafeMutableBufferPointer { p in XCTAssertEqual(fn(77, y, p.baseAddress, p.baseAddress, 0, 1), EK_OK) }
                assertBitEqual(d, run(fn, y, dy0), "\(name) isa \(isa.rawValue)")
            }
            var d = dy0
            d.withUnsafeMutableBufferPointer { p in
                XCTAssertEqual(ek_relu_back_rescale_f32(77, x, xr, yx, yr, p.baseAddress, p.baseAddress, 1e-10, 0, 1), EK_OK)
            }
            assertBitEqual(d, rescale(x, xr, yx, yr, dy0), "rescale isa \(isa.rawValue)")
        }
    }

    func testSharesCoverEverythingOnce() {
        var rng = SeededGenerator(seed: 705)
        for count in [1, 15, 16, 17, 100, 1000, 4099] {
            let y = rng.floats(count).map { max($0, 0) }, dy = rng.floats(count)
            let x = rng.floats(count), xr = rng.floats(count)
            let yx = x.map { max($0, 0) }, yr = xr.map { max($0, 0) }
            let wholeP = run(plain, y, dy), wholeG = run(guided, y, dy), wholeR = rescale(x, xr, yx, yr, dy)
            for nth in [2, 3, 4, 7, 64] {
                var p = [Float](repeating: .nan, count: count), g = p, r = p
                for ith in 0..<nth {
                    run(plain, y, dy, ith: ith, nth: nth, into: &p)
                    run(guided, y, dy, ith: ith, nth: nth, into: &g)
                    rescale(x, xr, yx, yr, dy, ith: ith, nth: nth, into: &r)
                }
                assertBitEqual(p, wholeP, "plain count \(count) nth \(nth)")
                assertBitEqual(g, wholeG, "guided count \(count) nth \(nth)")
                assertBitEqual(r, wholeR, "rescale count \(count) nth \(nth)")
            }
        }
    }

    func testRejectsBadArguments() {
        let a: [Float] = [1, 2, 3]
        var dx: [Float] = [0, 0, 0]
        for fn in [plain, guided] {
            XCTAssertEqual(fn(0, a, a, &dx, 0, 1), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(-3, a, a, &dx, 0, 1), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(3, nil, a, &dx, 0, 1), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(3, a, nil, &dx, 0, 1), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(3, a, a, nil, 0, 1), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(3, a, a, &dx, 1, 1), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(3, a, a, &dx, 0, 0), EK_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(fn(3, a, a, &dx, -1, 2), EK_ERR_INVALID_ARGUMENT)
        }
        XCTAssertEqual(ek_relu_back_rescale_f32(0, a, a, a, a, a, &dx, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, nil, a, a, a, a, &dx, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, nil, a, a, a, &dx, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, nil, a, a, &dx, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, a, nil, a, &dx, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, a, a, nil, &dx, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, a, a, a, nil, 1e-10, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, a, a, a, &dx, -1, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, a, a, a, &dx, .nan, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_back_rescale_f32(3, a, a, a, a, a, &dx, 1e-10, 2, 2), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(dx, [0, 0, 0], "a rejected call writes nothing")
    }

    // MARK: Concat

    /// The backward splits dy as the forward joined: concat(back(dy)) == dy.
    func testConcatBackSplitsChannels() {
        var rng = SeededGenerator(seed: 706)
        let (n, hw) = (3, 5)
        let channels: [Int64] = [2, 1, 4]
        let total = Int(channels.reduce(0, +))
        let dy = rng.floats(n * total * hw)
        var o0 = [Float](repeating: .nan, count: n * 2 * hw)
        var o1 = [Float](repeating: .nan, count: n * 1 * hw)
        var o2 = [Float](repeating: .nan, count: n * 4 * hw)
        o0.withUnsafeMutableBufferPointer { p0 in
            o1.withUnsafeMutableBufferPointer { p1 in
                o2.withUnsafeMutableBufferPointer { p2 in
                    let ptrs: [UnsafeMutablePointer<Float>?] = [p0.baseAddress, p1.baseAddress, p2.baseAddress]
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 3, dy, channels, ptrs), EK_OK)
                    let withNil: [UnsafeMutablePointer<Float>?] = [p0.baseAddress, nil, p2.baseAddress]
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 3, dy, channels, withNil), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 3, dy, [2, 0, 4], ptrs), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(0, Int64(hw), 3, dy, channels, ptrs), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), 0, 3, dy, channels, ptrs), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 0, dy, channels, ptrs), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 3, nil, channels, ptrs), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 3, dy, nil, ptrs), EK_ERR_INVALID_ARGUMENT)
                    XCTAssertEqual(ek_concat_channels_back_f32(Int64(n), Int64(hw), 3, dy, channels, nil), EK_ERR_INVALID_ARGUMENT)
                }
            }
        }
        let outs = [o0, o1, o2]
        var joined = [Float](repeating: .nan, count: dy.count)
        outs[0].withUnsafeBufferPointer { p0 in
            outs[1].withUnsafeBufferPointer { p1 in
                outs[2].withUnsafeBufferPointer { p2 in
                    let ptrs: [UnsafePointer<Float>?] = [p0.baseAddress, p1.baseAddress, p2.baseAddress]
                    XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, ptrs, channels, &joined), EK_OK)
                }
            }
        }
        assertBitEqual(joined, dy)
        // Image 1's second input is channel 2 of dy's image 1.
        XCTAssertEqual(Array(outs[1][hw..<(2 * hw)]), Array(dy[((1 * total + 2) * hw)..<((1 * total + 3) * hw)]))
    }
}
