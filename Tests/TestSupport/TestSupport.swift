import Foundation
import XCTest
import Elucidate

/// Relative L2 error ‖actual − expected‖ / ‖expected‖ (absolute when ‖expected‖ is 0).
public func relativeL2Error(_ actual: [Float], _ expected: [Float]) -> Double {
    precondition(actual.count == expected.count, "length \(actual.count) ≠ \(expected.count)")
    var diff = 0.0, norm = 0.0
    for (a, e) in zip(actual, expected) {
        diff += Double(a - e) * Double(a - e)
        norm += Double(e) * Double(e)
    }
    return norm == 0 ? diff.squareRoot() : (diff / norm).squareRoot()
}

/// Fails (at the caller's line) unless |a − e| ≤ atol + rtol·|e| for every element.
public func assertClose(
    _ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("length \(actual.count) ≠ \(expected.count) \(message())", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess: Float = 0
    for i in actual.indices {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if excess > worstExcess || (actual[i].isNaN != expected[i].isNaN) {
            worst = i
            worstExcess = excess.isNaN ? .infinity : excess
        }
    }
    if worst >= 0 {
        XCTFail("element \(worst): \(actual[worst]) vs \(expected[worst]) (rtol \(rtol), atol \(atol)) \(message())",
                file: file, line: line)
    }
}

public func assertClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.shape, expected.shape, "shape \(message())", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    assertClose(actual.scalars, expected.scalars, rtol: rtol, atol: atol, message(), file: file, line: line)
}

/// Committed test data under Tests/Fixtures.
public func fixtureURL(_ relativePath: String) -> URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()   // TestSupport
        .deletingLastPathComponent()   // Tests
        .appendingPathComponent("Fixtures")
        .appendingPathComponent(relativePath)
}

/// The package root (for locating built products and tools).
public var packageRootURL: URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// A fresh temporary directory, removed by the caller's test tearDown if it wishes.
public func makeTemporaryDirectory(_ prefix: String = "elucidate-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// SplitMix64: a small seeded generator so property tests are reproducible.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SeededGenerator {
    /// `count` floats uniform in [low, high).
    public mutating func floats(_ count: Int, in range: Range<Float> = -1..<1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }
}

// MARK: - Instruction-set levels

/// Runs `body` with Elucidate's kernels at `level`, then goes back to the process's starting
/// level. Throws `XCTSkip` (with the reason) when this CPU lacks `level`, so a level that
/// cannot be checked here shows as a skip rather than as a pass with nothing compared.
public func atInstructionSet<T>(_ level: InstructionSet, _ body: () throws -> T) throws -> T {
    let detected = Runtime.detectedInstructionSet
    guard level <= detected else {
        throw XCTSkip("this CPU lacks \(level) (it has \(detected)): the \(level) kernels are not checked on this machine")
    }
    try Runtime.setInstructionSet(level)
    defer { try? Runtime.setInstructionSet(nil) }
    return try body()
}

// MARK: - A fresh folder per test

/// A test case with a fresh temporary folder for every test (`folder`, removed afterwards)
/// and `path(_:)` for the files in it. Subclasses that set up more call
/// `try super.setUpWithError()` first.
open class TemporaryFolderTestCase: XCTestCase {
    /// The folder of the running test.
    public private(set) var folder: URL!

    override open func setUpWithError() throws {
        try super.setUpWithError()
        folder = try makeTemporaryDirectory("elucidate-\(type(of: self))")
    }

    override open func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
        try super.tearDownWithError()
    }

    /// The path of `name` in `folder`.
    public func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
}

// MARK: - Errors outside one patch

/// The relative L2 error of `actual` against `expected` (`[N, C, H, W]`) over everything, and
/// over everything but the `patch`×`patch` square (all planes) that holds the largest squared
/// error: where one float32 ReLU flip legitimately changes a gradient locally, the second
/// figure shows the rest still agrees.
public func relativeL2ErrorOutsideWorstPatch(_ actual: Tensor, _ expected: Tensor, patch: Int) -> (whole: Double, outside: Double) {
    let (height, width) = (actual.shape[2], actual.shape[3])
    let planes = actual.count / (height * width)
    let a = actual.scalars, e = expected.scalars
    // Integral image of the per-pixel squared error (summed over the planes).
    var integral = [Double](repeating: 0, count: (height + 1) * (width + 1))
    var norm = 0.0
    for y in 0..<height {
        var row = 0.0
        for x in 0..<width {
            for plane in 0..<planes {
                let i = (plane * height + y) * width + x
                row += Double(a[i] - e[i]) * Double(a[i] - e[i])
                norm += Double(e[i]) * Double(e[i])
            }
            integral[(y + 1) * (width + 1) + x + 1] = integral[y * (width + 1) + x + 1] + row
        }
    }
    let total = integral[height * (width + 1) + width]
    let (ph, pw) = (min(patch, height), min(patch, width))
    var worst = 0.0
    for y in 0...(height - ph) {
        for x in 0...(width - pw) {
            let sum = integral[(y + ph) * (width + 1) + x + pw] - integral[y * (width + 1) + x + pw]
                - integral[(y + ph) * (width + 1) + x] + integral[y * (width + 1) + x]
            worst = max(worst, sum)
        }
    }
    return ((total / norm).squareRoot(), (max(0, total - worst) / norm).squareRoot())
}
