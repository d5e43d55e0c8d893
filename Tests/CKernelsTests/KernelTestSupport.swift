import CKernels
import TestSupport
import XCTest

/// Every level this CPU supports, scalar first.
func supportedISAs() -> [ek_isa] {
    [EK_ISA_SCALAR, EK_ISA_AVX2, EK_ISA_AVX512].filter { $0.rawValue <= ek_isa_detected().rawValue }
}

/// Base class: restores the starting ISA (ELUCIDATE_ISA's or the CPU's) after every test so a forced level never leaks.
class KernelTestCase: XCTestCase {
    override func tearDown() {
        _ = ek_isa_reset()
        super.tearDown()
    }

    /// Runs `compute` under the scalar reference and under every other supported level,
    /// and hands (scalar, other, level) to `check`.
    func compareWithScalar(
        _ compute: () -> [Float], check: ([Float], [Float], ek_isa) -> Void
    ) {
        XCTAssertEqual(ek_set_isa(EK_ISA_SCALAR), EK_ISA_SCALAR)
        let reference = compute()
        for isa in supportedISAs() where isa != EK_ISA_SCALAR {
            XCTAssertEqual(ek_set_isa(isa), isa)
            check(reference, compute(), isa)
        }
        _ = ek_isa_reset()
    }
}

/// Fails unless both arrays hold the same bit patterns (NaN payloads included).
func assertBitEqual(
    _ actual: [Float], _ expected: [Float], _ message: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("length \(actual.count) ≠ \(expected.count) \(message())", file: file, line: line)
        return
    }
    if let i = actual.indices.first(where: { actual[$0].bitPattern != expected[$0].bitPattern }) {
        XCTFail("element \(i): \(actual[i]) vs \(expected[i]) \(message())", file: file, line: line)
    }
}

/// Sizes that exercise vector tails: 1 ... 2*16+3, plus a few larger odd ones.
func tailSizes() -> [Int] { Array(1...35) + [47, 64, 100, 129, 1000, 1023] }

extension SeededGenerator {
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func bool() -> Bool { Bool.random(using: &self) }
    /// Floats with some exact zeros, negative zeros and ties mixed in.
    mutating func spicyFloats(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            switch int(0...19) {
            case 0: return 0
            case 1: return -0.0
            case 2: return 0.5
            default: return Float.random(in: -4..<4, using: &self)
            }
        }
    }
}

/// Calls `body` with a pointer to the array's storage, or nil for a nil array.
func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
    guard let array else { return try body(nil) }
    return try array.withUnsafeBufferPointer { try body($0.baseAddress) }
}

func status(_ s: ek_status) -> String { String(cString: ek_status_string(s)) }
