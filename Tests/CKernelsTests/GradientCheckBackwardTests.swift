import CKernels
import TestSupport
import XCTest

// Shared tools of the backward-kernel tests: Double dot products, central finite
// differences of a Double loss, and a gradient comparison scaled to the whole gradient.
//
// How the finite-difference checks work: each test re-implements the forward kernel in
// Double (a few lines from the definition), first checks that this re-implementation
// agrees with the real Float forward kernel (so the check is about the kernel's own
// semantics: divisors, padding, ceil_mode), and then differentiates the scalar loss
// L(x) = Σ w·f(x) with random w by central differences in Double. For the linear layers
// (convolution, pooling, linear) the central difference of a linear function is exact up
// to Double rounding (~1e-16·|L|/h ≈ 1e-12 here), and for the smooth non-linear ones
// (batch norm, softmax) its truncation error is O(h²·f''') ≈ 1e-8 with h = 1e-4. What
// remains is the Float kernel's own rounding: sums of up to a few hundred float products
// of O(1) values, a few 1e-6 relative to the gradient's size at most, so the tolerances
// below (1e-5 relative to the largest gradient entry, plus a small absolute floor) leave a
// margin of several times that while any indexing or divisor mistake (an O(1) relative
// error in some entry) fails by orders of magnitude.

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
