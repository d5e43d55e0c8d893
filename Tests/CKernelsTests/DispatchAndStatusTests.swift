import CKernels
import XCTest

final class DispatchAndStatusTests: KernelTestCase {
    func testStartingLevelIsActiveByDefault() {
        XCTAssertEqual(ek_isa_active(), ek_isa_starting())
        XCTAssertLessThanOrEqual(ek_isa_starting().rawValue, ek_isa_detected().rawValue)
        XCTAssertTrue(supportedISAs().contains(EK_ISA_SCALAR))
        let info = ek_isa_get_info()
        XCTAssertEqual(info.detected, ek_isa_detected())
        XCTAssertEqual(info.active, ek_isa_active())
    }

    /// Every kernel test compares each SIMD level this CPU has with the scalar reference; a
    /// level it lacks is reported here as a skip, once, rather than passing unchecked.
    func testAVX2KernelsAreComparedWithScalarOnThisCPU() throws {
        guard ek_isa_detected().rawValue >= EK_ISA_AVX2.rawValue else {
            throw XCTSkip("this CPU lacks AVX2+FMA: the AVX2 kernels are not compared with the scalar reference here")
        }
        XCTAssertTrue(supportedISAs().contains(EK_ISA_AVX2))
    }

    func testAVX512KernelsAreComparedWithScalarOnThisCPU() throws {
        guard ek_isa_detected() == EK_ISA_AVX512 else {
            throw XCTSkip("this CPU lacks AVX-512 F/BW/DQ/VL: the AVX-512 kernels are not compared with the scalar reference here")
        }
        XCTAssertTrue(supportedISAs().contains(EK_ISA_AVX512))
    }

    func testResetAndLevelNames() {
        XCTAssertEqual(ek_set_isa(EK_ISA_SCALAR), EK_ISA_SCALAR)
        XCTAssertEqual(ek_isa_get_info().origin, EK_ISA_ORIGIN_PROGRAM)
        XCTAssertEqual(ek_isa_reset(), ek_isa_starting())
        XCTAssertNotEqual(ek_isa_get_info().origin, EK_ISA_ORIGIN_PROGRAM)
        var level = EK_ISA_SCALAR
        for (name, expected) in [("scalar", EK_ISA_SCALAR), ("AVX2", EK_ISA_AVX2), ("avx2+fma", EK_ISA_AVX2), ("avx512", EK_ISA_AVX512)] {
            XCTAssertEqual(ek_isa_parse(name, &level), 1, name)
            XCTAssertEqual(level, expected, name)
        }
        for bad in ["", "sse", "avx", "avx512f", " avx2"] {
            XCTAssertEqual(ek_isa_parse(bad, &level), 0, bad)
        }
        XCTAssertEqual(ek_isa_parse(nil, nil), 0)
    }

    func testDetectionAgreesWithCPUInfo() throws {
        // /proc/cpuinfo lists the flags the kernel enabled (it hides AVX-512 when the OS
        // does not save its state), so it is an independent witness for our CPUID query.
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { throw XCTSkip("no /proc/cpuinfo") }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let avx512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        let avx2 = flags.contains("avx2") && flags.contains("fma")
        let expected = avx2 ? (avx512 ? EK_ISA_AVX512 : EK_ISA_AVX2) : EK_ISA_SCALAR
        XCTAssertEqual(ek_isa_detected(), expected)
    }

    func testSetISAIsClampedAndSticky() {
        for isa in supportedISAs() {
            XCTAssertEqual(ek_set_isa(isa), isa)
            XCTAssertEqual(ek_isa_active(), isa)
        }
        // Asking for more than the CPU has gives the detected level.
        XCTAssertEqual(ek_set_isa(EK_ISA_AVX512), ek_isa_detected())
        XCTAssertEqual(ek_set_isa(ek_isa(rawValue: 77)), ek_isa_detected())
        XCTAssertEqual(ek_set_isa(EK_ISA_SCALAR), EK_ISA_SCALAR)
    }

    func testNames() {
        XCTAssertEqual(String(cString: ek_isa_name(EK_ISA_SCALAR)), "scalar")
        XCTAssertEqual(String(cString: ek_isa_name(EK_ISA_AVX2)), "avx2+fma")
        XCTAssertEqual(String(cString: ek_isa_name(EK_ISA_AVX512)), "avx512")
        XCTAssertEqual(status(EK_OK), "ok")
        let all = [EK_OK, EK_ERR_INVALID_ARGUMENT, EK_ERR_SCRATCH_TOO_SMALL, EK_ERR_BLAS_UNAVAILABLE]
        XCTAssertEqual(Set(all.map(status)).count, 4)
        XCTAssertTrue(status(EK_ERR_SCRATCH_TOO_SMALL).contains("scratch"))
        XCTAssertTrue(status(EK_ERR_BLAS_UNAVAILABLE).contains("BLAS"))
        XCTAssertEqual(status(ek_status(rawValue: 99)), "unknown status")
    }
}
