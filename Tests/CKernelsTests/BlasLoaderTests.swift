import CKernels
import Foundation
import TestSupport
import XCTest

final class BlasLoaderTests: KernelTestCase {
    /// The environment the process started with (/proc/self/environ is not changed by setenv).
    private func startupEnvironment() -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/self/environ") else { return nil }
        var env: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            guard let eq = text.firstIndex(of: "=") else { continue }
            env[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        return env
    }

    func testLoadsOpenBLASWithOurCoreType() throws {
        XCTAssertEqual(ek_blas_load(), EK_OK)
        let info = ek_blas_get_info()
        XCTAssertEqual(info.loaded, 1)
        XCTAssertNil(info.error)
        let library = info.library.map { String(cString: $0) } ?? ""
        XCTAssertTrue(library.contains("openblas"), "opened \(library)")
        let core = info.core_name.map { String(cString: $0) } ?? ""
        XCTAssertFalse(core.isEmpty, "openblas_get_corename")

        // The level the process started at (ELUCIDATE_ISA's or the CPU's) picks the kernels; a
        // CPU without AVX2 is left to OpenBLAS unless ELUCIDATE_ISA=scalar forced it.
        let expected: String? = switch ek_isa_starting() {
        case EK_ISA_AVX512: "SkylakeX"
        case EK_ISA_AVX2: "Haswell"
        default: ek_isa_starting() == ek_isa_detected() ? nil : "Nehalem"
        }
        let envNow = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        let seen = info.coretype_env.map { String(cString: $0) }
        XCTAssertEqual(seen, envNow, "the loader reports the variable as it is now set")

        let startup = try XCTUnwrap(startupEnvironment(), "/proc/self/environ")
        if let userValue = startup["OPENBLAS_CORETYPE"], !userValue.isEmpty {  // empty counts as unset
            // Never override the user.
            XCTAssertEqual(info.coretype_set_by_us, 0)
            XCTAssertEqual(seen, userValue)
        } else if let expected {
            XCTAssertEqual(info.coretype_set_by_us, 1)
            XCTAssertEqual(seen, expected)
            // OpenBLAS read our choice in its constructor: that is the whole point.
            XCTAssertEqual(core.lowercased(), expected.lowercased())
        } else {
            XCTAssertEqual(info.coretype_set_by_us, 0)
            XCTAssertNil(seen)
        }
        let readable = ek_blas_get_num_threads() >= 0  // -1: not OpenBLAS
        ek_blas_set_num_threads(2)  // must not crash
        if readable { XCTAssertEqual(ek_blas_get_num_threads(), 2) }
        ek_blas_set_num_threads(0)  // ignored
        if readable { XCTAssertEqual(ek_blas_get_num_threads(), 2) }
        // Back to the one thread the loader sets: the count is process-wide, and the engine
        // tests sharing this process rely on it (ConcurrentExplanationTests).
        ek_blas_set_num_threads(1)
    }

    private func naiveGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
        b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int
    ) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(av) * Double(bv)
                }
                out[i * ldc + j] = Float(Double(alpha) * acc + Double(beta) * Double(c[i * ldc + j]))
            }
        }
        return out
    }

    func testGemmMatchesNaiveReferenceForAllTransposes() {
        var rng = SeededGenerator(seed: 67)
        let (m, n, k) = (67, 131, 203)
        for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
            // Leading dimensions larger than needed, to check they are honoured.
            let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2
            let a = rng.floats((transA ? k : m) * lda)
            let b = rng.floats((transB ? n : k) * ldb)
            var c = rng.floats(m * ldc)
            let (alpha, beta): (Float, Float) = (0.75, -0.5)
            let expected = naiveGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                     a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            XCTAssertEqual(ek_gemm_f32(transA ? 1 : 0, transB ? 1 : 0, Int64(m), Int64(n), Int64(k),
                                       alpha, a, Int64(lda), b, Int64(ldb), beta, &c, Int64(ldc)), EK_OK)
            assertClose(c, expected, rtol: 1e-4, atol: 1e-4, "transA \(transA) transB \(transB)")
        }
    }

    func testGemmRejectsBadArguments() {
        let a = [Float](repeating: 1, count: 64), b = a
        var c = a
        XCTAssertEqual(ek_gemm_f32(0, 0, 0, 4, 4, 1, a, 4, b, 4, 0, &c, 4), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_gemm_f32(0, 0, 4, -1, 4, 1, a, 4, b, 4, 0, &c, 4), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_gemm_f32(0, 0, 4, 4, 4, 1, nil, 4, b, 4, 0, &c, 4), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_gemm_f32(0, 0, 4, 4, 4, 1, a, 3, b, 4, 0, &c, 4), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_gemm_f32(0, 1, 4, 8, 2, 1, a, 2, b, 1, 0, &c, 8), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_gemm_f32(0, 0, 4, 4, 4, 1, a, 4, b, 4, 0, &c, 3), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_gemm_f32(0, 0, 1 << 40, 1, 1, 1, a, 1, b, 1, 0, &c, 1), EK_ERR_INVALID_ARGUMENT)
    }
}
