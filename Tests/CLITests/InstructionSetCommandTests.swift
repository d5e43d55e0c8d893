import Elucidate
import Foundation
import TestSupport
import XCTest

/// `ELUCIDATE_ISA` forces a SIMD level for the whole process: `elucidate info` shows the level
/// and why, OpenBLAS gets that level's kernels, and a level that cannot be had is refused.
final class InstructionSetCommandTests: XCTestCase {
    /// `elucidate info --json` with `environment` and nothing else of ours: the test process's
    /// own ELUCIDATE_ISA (CI runs tests at forced levels) and OPENBLAS_CORETYPE are dropped.
    private func info(_ environment: [String: String]) throws -> [String: Any] {
        let inherited = ["OPENBLAS_CORETYPE", "ELUCIDATE_ISA"].filter { environment[$0] == nil }
        let result = try runElucidate(["info", "--json"], environment: environment, unsetting: inherited)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    func testEachLevelThisCPUHasIsInForceWithItsOpenBLASKernels() throws {
        let detected = Runtime.detectedInstructionSet
        let coretypes: [InstructionSet: String] = [.scalar: "Nehalem", .avx2: "Haswell", .avx512: "SkylakeX"]
        for level in InstructionSet.allCases where level <= detected {
            let report = try info(["ELUCIDATE_ISA": level.name])
            XCTAssertEqual(report["instructionSet"] as? String, level.name)
            XCTAssertEqual(report["instructionSetDetected"] as? String, detected.name)
            XCTAssertEqual(report["instructionSetOrigin"] as? String, "environment")
            XCTAssertNil(report["instructionSetProblem"] as? String)
            XCTAssertEqual(report["openblasCoretype"] as? String, coretypes[level])
            XCTAssertEqual((report["blasCore"] as? String)?.lowercased(), coretypes[level]?.lowercased())
        }
        let plain = try runElucidate(["info"], environment: ["ELUCIDATE_ISA": "scalar"], unsetting: ["OPENBLAS_CORETYPE"])
        XCTAssertTrue(plain.stdout.contains("SIMD kernels:      scalar (ELUCIDATE_ISA=scalar"), plain.stdout)
        let auto = try info([:])
        XCTAssertEqual(auto["instructionSet"] as? String, detected.name)
        XCTAssertEqual(auto["instructionSetOrigin"] as? String, "cpu")
    }

    func testAnUnknownLevelIsRefusedWithOneLine() throws {
        let result = try runElucidate(["models"], environment: ["ELUCIDATE_ISA": "avx3"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderr, "elucidate: ELUCIDATE_ISA=avx3 is not a level (scalar, avx2, avx512)\n")
        XCTAssertEqual(result.stdout, "")
        // info still runs and says what is wrong.
        let report = try info(["ELUCIDATE_ISA": "avx3"])
        XCTAssertEqual(report["instructionSet"] as? String, Runtime.detectedInstructionSet.name)
        XCTAssertEqual(report["instructionSetProblem"] as? String, "ELUCIDATE_ISA=avx3 is not a level (scalar, avx2, avx512)")
    }

    func testALevelAboveTheCPUsIsRefused() throws {
        guard let above = InstructionSet.allCases.first(where: { $0 > Runtime.detectedInstructionSet }) else {
            throw XCTSkip("this CPU has every level (\(Runtime.detectedInstructionSet)): none to ask for above it")
        }
        let result = try runElucidate(["models"], environment: ["ELUCIDATE_ISA": above.name], unsetting: ["OPENBLAS_CORETYPE"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("asks for more than this CPU has"), result.stderr)
    }

    func testTheLibraryRefusesALevelTheCPULacksAndResets() throws {
        let start = Runtime.instructionSet
        try Runtime.setInstructionSet(.scalar)
        XCTAssertEqual(Runtime.instructionSet, .scalar)
        XCTAssertEqual(Runtime.instructionSetChoice.origin, .program)
        try Runtime.setInstructionSet(nil)
        XCTAssertEqual(Runtime.instructionSet, start)
        if Runtime.detectedInstructionSet < .avx512 {
            XCTAssertThrowsError(try Runtime.setInstructionSet(.avx512))
        }
        XCTAssertEqual(InstructionSet(name: "AVX2+FMA"), .avx2)
        XCTAssertNil(InstructionSet(name: "sse2"))
    }
}
