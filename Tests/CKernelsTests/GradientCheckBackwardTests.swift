import CKernels
import TestSupport
import XCTest

// Shared tools of the backward-kernel tests: Double dot products, central finite
// differences of a Double loss, error bounds, and running a check at one instruction-set level.
//
// How the finite-difference checks work: each test re-implements the forward kernel in
// Double (a few lines from the definition), first checks that this re-implementation
// agrees with the real Float forward kernel within the forward's rounding bound (so the
// check is about the kernel's own semantics: divisors, padding, ceil_mode), and then
// differentiates the scalar loss L(x) = Σ w·f(x) with random w by central differences in
// Double. Every tolerance is an error bound computed from the values, not a constant:
// - the kernel: a float32 result made of n roundings errs by at most γ(n)·G, where G is the
//   same computation with every input replaced by its absolute value (`roundingBound`; for a
//   dot product G = Σ|terms|, for an input gradient G = |W|ᵀ|dy|);
// - the central difference: for a linear or piecewise-linear function with no kink in the
//   segment it is exact but for Double's rounding of the two losses, each at most
//   γ_Double(n)·Σ|terms|, divided by 2h (`centralDifferenceRounding`); a smooth function adds
//   its truncation error (h²/6)·|∂³L/∂x³|.
// Each check runs at every level as its own method (`atLevel`), and asserts that its bound
// is far below the gradient's own size (`assertWithinBounds`), so a wrong index, divisor or
// mask — an O(1) relative error in some entry — fails by orders of magnitude.

/// Float32's and Double's unit roundoff.
let float32Roundoff = 0x1p-24
let doubleRoundoff = 0x1p-53

/// γ(n) = n·u / (1 − 2n·u): |fl(Σ) − Σ| ≤ γ(n)·Σ|terms| for n roundings in any order, fused
/// multiply-adds included (Higham, Accuracy and Stability of Numerical Algorithms, §3.1);
/// the extra n·u covers computing Σ|terms| itself in float32.
func roundingBound(_ n: Int, unit: Double = float32Roundoff) -> Double {
    Double(n) * unit / (1 - 2 * Double(n) * unit)
}

/// The rounding error of a central difference whose two losses each take `roundings` Double
/// roundings of terms summing in absolute value to at most `magnitude`, over the step 2h.
func centralDifferenceRounding(magnitude: Double, roundings: Int, h: Double) -> Double {
    2 * roundingBound(roundings, unit: doubleRoundoff) * magnitude / (2 * h)
}

/// Fails unless |actual[i] − expected[i]| ≤ bounds[i] for every i, and unless the largest
/// bound is below `sensitivity` times `size` (default: the largest |expected|; pass the whole
/// gradient's size when `expected` is a sample of it): a bound that loose could not tell a
/// wrong kernel from rounding. A size of 0 (a gradient that is exactly zero) skips that check.
func assertWithinBounds(
    _ actual: [Float], _ expected: [Double], _ bounds: [Double], sensitivity: Double = 1e-3, size: Double? = nil,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count, bounds.count == expected.count else {
        XCTFail("lengths \(actual.count), \(expected.count), \(bounds.count) \(message())", file: file, line: line)
        return
    }
    if let i = actual.indices.first(where: { !(abs(Double(actual[$0]) - expected[$0]) <= bounds[$0]) }) {
        XCTFail("entry \(i): \(actual[i]) vs \(expected[i]) (bound \(bounds[i])) \(message())", file: file, line: line)
    }
    let size = size ?? expected.map(abs).max() ?? 0
    let loosest = bounds.max() ?? 0
    if size > 0, !(loosest <= sensitivity * size) {
        XCTFail("the bound \(loosest) is not below \(sensitivity) of the size \(size): it checks nothing \(message())",
                file: file, line: line)
    }
}

/// Runs `body` with the kernels at `isa`, then back at the starting level. Throws XCTSkip
/// (with the reason) when this CPU lacks `isa`, so a level that cannot be checked here shows
/// as a skip, not as a pass with nothing compared.
func atLevel(_ isa: ek_isa, _ body: () throws -> Void) throws {
    let detected = ek_isa_detected()
    let name = { (level: ek_isa) in String(cString: ek_isa_name(level)) }
    guard isa.rawValue <= detected.rawValue else {
        throw XCTSkip("this CPU lacks \(name(isa)) (it has \(name(detected))): the \(name(isa)) kernels are not checked on this machine")
    }
    XCTAssertEqual(ek_set_isa(isa), isa)
    defer { _ = ek_isa_reset() }
    try body()
}

/// Σ a·b accumulated in Double.
func dotD(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var s = 0.0
    for i in a.indices { s += Double(a[i]) * Double(b[i]) }
    return s
}

func dotD(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var s = 0.0
    for i in a.indices { s += a[i] * b[i] }
    return s
}

/// Σ |a·b| in Double: the scale against which a dot-product identity is judged.
func absDotD(_ a: [Float], _ b: [Float]) -> Double {
    var s = 0.0
    for i in a.indices { s += abs(Double(a[i]) * Double(b[i])) }
    return s
}

/// Central differences (L(x + h·e_i) − L(x − h·e_i)) / 2h at the given coordinates.
func centralDifferences(_ x: [Double], at indices: [Int], h: Double, _ loss: ([Double]) -> Double) -> [Double] {
    var xp = x
    return indices.map { i in
        let xi = x[i]
        xp[i] = xi + h
        let plus = loss(xp)
        xp[i] = xi - h
        let minus = loss(xp)
        xp[i] = xi
        return (plus - minus) / (2 * h)
    }
}

/// All of 0..<count when it has at most `limit` elements, else `limit` distinct random
/// ones that include the first and the last (the corners of a plane, where padding
/// mistakes show).
func sampleIndices(_ count: Int, limit: Int, _ rng: inout SeededGenerator) -> [Int] {
    guard count > limit else { return Array(0..<count) }
    var chosen: Set<Int> = [0, count - 1]
    while chosen.count < limit { chosen.insert(rng.int(0...(count - 1))) }
    return chosen.sorted()
}

/// Fails unless |actual[i] − expected[i]| ≤ atol + rtol·max|expected| for every i (an entry
/// that cancels to about zero is judged against the size of the whole gradient).
func assertGradient(
    _ actual: [Float], _ expected: [Double], rtol: Double, atol: Double = 1e-6,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("length \(actual.count) ≠ \(expected.count) \(message())", file: file, line: line)
        return
    }
    let scale = expected.map(abs).max() ?? 0
    let bound = atol + rtol * scale
    var worst = -1, worstError = 0.0
    for i in actual.indices {
        let err = abs(Double(actual[i]) - expected[i])
        if !(err <= bound), err.isNaN || err > worstError { worst = i; worstError = err.isNaN ? .infinity : err }
    }
    if worst >= 0 {
        XCTFail("entry \(worst): \(actual[worst]) vs \(expected[worst]) (bound \(bound)) \(message())",
                file: file, line: line)
    }
}

/// Picks the entries of `values` at `indices`.
func pick(_ values: [Float], _ indices: [Int]) -> [Float] { indices.map { values[$0] } }

final class GradientCheckBackwardTests: XCTestCase {
    /// The checking tool itself: central differences recover a known non-linear gradient.
    func testCentralDifferencesRecoverAnalyticGradient() {
        // L(x) = Σ sin(x_i)·x_{i+1} + x_0³
        let x: [Double] = [0.3, -1.2, 2.0, 0.7, -0.4]
        func loss(_ v: [Double]) -> Double {
            var s = v[0] * v[0] * v[0]
            for i in 0..<(v.count - 1) { s += sin(v[i]) * v[i + 1] }
            return s
        }
        var analytic = [Double](repeating: 0, count: x.count)
        analytic[0] += 3 * x[0] * x[0]
        for i in 0..<(x.count - 1) {
            analytic[i] += cos(x[i]) * x[i + 1]
            analytic[i + 1] += sin(x[i])
        }
        let fd = centralDifferences(x, at: Array(x.indices), h: 1e-4, loss)
        for i in x.indices { XCTAssertEqual(fd[i], analytic[i], accuracy: 1e-7, "coordinate \(i)") }
    }

    func testSampleIndicesAndGradientAssertion() {
        var rng = SeededGenerator(seed: 900)
        XCTAssertEqual(sampleIndices(5, limit: 10, &rng), [0, 1, 2, 3, 4])
        let some = sampleIndices(1000, limit: 20, &rng)
        XCTAssertEqual(some.count, 20)
        XCTAssertEqual(some.first, 0)
        XCTAssertEqual(some.last, 999)
        XCTAssertEqual(Set(some).count, 20)
        assertGradient([1, 2.00001, -3], [1, 2, -3], rtol: 1e-5)
    }
}
