import CKernels
import TestSupport
import XCTest

/// LAPACKE loaded at run time and `ek_lstsq_f64` (dgelsd): exact answers on small systems,
/// least squares on overdetermined ones, the minimum-norm solution on rank-deficient and
/// underdetermined ones, and statuses rather than crashes on bad arguments.
final class LapackLoaderTests: KernelTestCase {
    /// Solves A·x ≈ b for a row-major A with `columns` columns; returns x and the rank.
    private func lstsq(_ a: [Double], columns: Int, _ b: [Double], rcond: Double = 1e-12,
                       file: StaticString = #filePath, line: UInt = #line) -> (x: [Double], rank: Int64) {
        let rows = b.count
        var matrix = a
        var rhs = b + [Double](repeating: 0, count: max(0, columns - rows))
        var rank: Int64 = -1
        let status = ek_lstsq_f64(Int64(rows), Int64(columns), &matrix, Int64(columns), &rhs, rcond, &rank)
        XCTAssertEqual(status, EK_OK, String(cString: ek_lapack_status_string(status)), file: file, line: line)
        return (Array(rhs.prefix(columns)), rank)
    }

    private func assertClose(_ actual: [Double], _ expected: [Double], tolerance: Double = 1e-12,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: tolerance * max(1, abs(e)), "element \(i): \(actual) vs \(expected)",
                           file: file, line: line)
        }
    }

    func testLoadsLAPACKEAfterOpenBLAS() {
        XCTAssertEqual(ek_lapack_load(), EK_OK)
        let info = ek_lapack_get_info()
        XCTAssertEqual(info.loaded, 1)
        XCTAssertNil(info.error)
        let library = info.library.map { String(cString: $0) } ?? ""
        XCTAssertTrue(library.hasPrefix("liblapacke.so"), "opened \(library)")
        // Loading LAPACKE loads OpenBLAS first, so the core type was chosen before anything
        // could pull OpenBLAS in as LAPACK's backend.
        XCTAssertEqual(ek_blas_get_info().loaded, 1)
        let lapack = info.lapack_library.map { String(cString: $0) }
        XCTAssertNotNil(lapack, "the file that provides dgelsd_")
        print("LAPACKE: \(library), LAPACK from \(lapack ?? "?")")
    }

    func testSquareSystemIsSolvedExactly() {
        // 2x + y = 5, x − 3y = −8  →  x = 1, y = 3.
        let (x, rank) = lstsq([2, 1, 1, -3], columns: 2, [5, -8])
        assertClose(x, [1, 3])
        XCTAssertEqual(rank, 2)
        // A 4×4 with a known answer.
        let a: [Double] = [4, -2, 1, 0, 3, 6, -4, 2, 2, 1, 8, -5, 1, 0, 2, 7]
        let expected: [Double] = [0.5, -1.25, 2, 3]
        var b = [Double](repeating: 0, count: 4)
        for i in 0..<4 { for j in 0..<4 { b[i] += a[i * 4 + j] * expected[j] } }
        assertClose(lstsq(a, columns: 4, b).x, expected)
    }

    func testOverdeterminedSystemGivesTheLeastSquaresFit() {
        // The line through (0, 1), (1, 3), (2, 4), (3, 4): normal equations by hand give
        // slope 1 and intercept 1.5 (residuals −0.5, 0.5, 0.5, −0.5).
        let a: [Double] = [1, 0, 1, 1, 1, 2, 1, 3]
        let (x, rank) = lstsq(a, columns: 2, [1, 3, 4, 4])
        assertClose(x, [1.5, 1])
        XCTAssertEqual(rank, 2)
        // A consistent overdetermined system is solved exactly.
        assertClose(lstsq(a, columns: 2, [2, 5, 8, 11]).x, [2, 3])
    }

    func testRankDeficientSystemGivesTheMinimumNormSolution() {
        // Both columns equal: every x with x₀ + x₁ = 2 fits b = [2, 2, 2] exactly; the
        // minimum-norm one is x = (1, 1).
        let (x, rank) = lstsq([1, 1, 1, 1, 1, 1], columns: 2, [2, 2, 2])
        assertClose(x, [1, 1])
        XCTAssertEqual(rank, 1)
        // Third column = first + second. b = A·(1, 2, 0) + a residual orthogonal to the
        // columns; the minimum-norm solution removes the null direction (1, 1, −1)/√3 from
        // (1, 2, 0): (1, 2, 0) − 1·(1, 1, −1) = (0, 1, 1).
        let a: [Double] = [1, 0, 1, 0, 1, 1, 1, 1, 2, 1, -1, 0]
        let fit: [Double] = [1, 2, 3, -1]  // A·(1, 2, 0)
        // (−1, −1, 1, 0) is orthogonal to every column of A.
        let residual: [Double] = [-0.25, -0.25, 0.25, 0]
        for column in 0..<3 {
            var dot = 0.0
            for row in 0..<4 { dot += a[row * 3 + column] * residual[row] }
            XCTAssertEqual(dot, 0, "column \(column)")
        }
        let b: [Double] = (0..<4).map { fit[$0] + residual[$0] }
        let deficient = lstsq(a, columns: 3, b)
        assertClose(deficient.x, [0, 1, 1])
        XCTAssertEqual(deficient.rank, 2)
    }

    func testUnderdeterminedSystemGivesTheMinimumNormSolution() {
        // One equation x + 2y + 2z = 9: the minimum-norm solution is 9·(1, 2, 2)/9 = (1, 2, 2).
        let (x, rank) = lstsq([1, 2, 2], columns: 3, [9])
        assertClose(x, [1, 2, 2])
        XCTAssertEqual(rank, 1)
    }

    func testRcondDropsSmallSingularValues() {
        // diag(1, 1e-8): with rcond 1e-6 the second direction counts as zero, so x₁ = 0;
        // with a tiny rcond it is solved (x₁ = 1e-8 / 1e-8 = 1).
        let a: [Double] = [1, 0, 0, 1e-8]
        let truncated = lstsq(a, columns: 2, [3, 1e-8], rcond: 1e-6)
        assertClose(truncated.x, [3, 0])
        XCTAssertEqual(truncated.rank, 1)
        assertClose(lstsq(a, columns: 2, [3, 1e-8], rcond: 1e-12).x, [3, 1], tolerance: 1e-8)
    }

    func testLeadingDimensionIsHonoured() {
        // The 2×2 system of testSquareSystemIsSolvedExactly stored in rows of 3 (last unused,
        // even NaN: it must not be read).
        var a: [Double] = [2, 1, .nan, 1, -3, .nan]
        var b: [Double] = [5, -8]
        XCTAssertEqual(ek_lstsq_f64(2, 2, &a, 3, &b, 1e-12, nil), EK_OK)
        assertClose(b, [1, 3])
    }

    func testBadArgumentsGiveAStatus() {
        var a: [Double] = [1, 2, 3, 4]
        var b: [Double] = [1, 2]
        var rank: Int64 = 0
        XCTAssertEqual(ek_lstsq_f64(0, 2, &a, 2, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_lstsq_f64(2, 0, &a, 2, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_lstsq_f64(-1, 2, &a, 2, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_lstsq_f64(2, 2, &a, 1, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT, "lda < n")
        XCTAssertEqual(ek_lstsq_f64(2, 2, nil, 2, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_lstsq_f64(2, 2, &a, 2, nil, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_lstsq_f64(2, 2, &a, 2, &b, .nan, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_lstsq_f64(1 << 40, 2, &a, 2, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        var infinite: [Double] = [1, .infinity, 3, 4]
        XCTAssertEqual(ek_lstsq_f64(2, 2, &infinite, 2, &b, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        var notANumber: [Double] = [1, .nan]
        XCTAssertEqual(ek_lstsq_f64(2, 2, &a, 2, &notANumber, 1e-6, &rank), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(rank, 0, "a refused call leaves the rank alone")
    }

    func testStatusStringsCoverTheNewStatuses() {
        XCTAssertEqual(String(cString: ek_lapack_status_string(EK_ERR_LAPACK_UNAVAILABLE)), "LAPACKE could not be loaded")
        XCTAssertTrue(String(cString: ek_lapack_status_string(EK_ERR_LAPACK_FAILED)).contains("did not converge"))
        XCTAssertEqual(String(cString: ek_lapack_status_string(EK_OK)), String(cString: ek_status_string(EK_OK)))
        XCTAssertEqual(String(cString: ek_lapack_status_string(EK_ERR_INVALID_ARGUMENT)),
                       String(cString: ek_status_string(EK_ERR_INVALID_ARGUMENT)))
        XCTAssertNotEqual(EK_ERR_LAPACK_UNAVAILABLE, EK_ERR_BLAS_UNAVAILABLE)
    }
}
