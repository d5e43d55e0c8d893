import Foundation
import TestSupport
import XCTest

/// The result of `runBounded`: the exit status, both streams, and whether the command had
/// to be killed for running past its time limit.
struct BoundedResult {
    let status: Int32
    let stdout: Data
    let stderr: String
    let timedOut: Bool

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs `elucidate arguments` (or, with `shell`, `/bin/sh -c SHELL elucidate arguments…`,
/// where the script runs the command as `"$0" "$@"`) and kills it after `timeout` seconds:
/// for commands that must not hang (a FIFO as an input). `standardOutput` and
/// `standardError` replace the captured streams (e.g. a handle on /dev/full).
func runBounded(_ arguments: [String], shell: String? = nil, timeout: TimeInterval = 120,
                standardOutput: FileHandle? = nil, standardError: FileHandle? = nil) throws -> BoundedResult {
    let process = Process()
    let elucidate = productsDirectory.appendingPathComponent("elucidate")
    if let shell {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", shell, elucidate.path] + arguments
    } else {
        process.executableURL = elucidate
        process.arguments = arguments
    }
    let out = Pipe(), err = Pipe()
    process.standardOutput = standardOutput ?? out
    process.standardError = standardError ?? err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    if standardOutput == nil {
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    }
    if standardError == nil {
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    let timedOut = process.isRunning
    if timedOut { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    group.wait()
    return BoundedResult(status: process.terminationStatus, stdout: outData,
                         stderr: String(decoding: errData, as: UTF8.self), timedOut: timedOut)
}

/// Fails unless `result` is a refusal: not timed out, a non-zero exit that is not a
/// signal, exactly one stderr line `elucidate: …` containing `expected`, no crash report.
func assertOneLineFailure(_ result: BoundedResult, mentioning expected: String, _ command: String,
                          file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(result.timedOut, "\(command): hung", file: file, line: line)
    XCTAssertNotEqual(result.status, 0, "\(command): exit 0", file: file, line: line)
    XCTAssertLessThan(result.status, 128, "\(command): killed by a signal", file: file, line: line)
    XCTAssertEqual(result.stderr.split(separator: "\n", omittingEmptySubsequences: false).count, 2,
                   "\(command): stderr \(result.stderr)", file: file, line: line)
    XCTAssertTrue(result.stderr.hasPrefix("elucidate: "), "\(command): stderr \(result.stderr)", file: file, line: line)
    XCTAssertTrue(result.stderr.contains(expected), "\(command): stderr \(result.stderr) lacks \(expected)", file: file, line: line)
    XCTAssertFalse(result.stderr.contains("Fatal error"), "\(command): \(result.stderr)", file: file, line: line)
}

/// Fails unless `path` is (still) the character device `major`:`minor` — a test that writes
/// to /dev/null or /dev/full as root checks the machine was not broken.
func assertCharacterDevice(_ path: String, _ major: UInt32, _ minor: UInt32,
                           file: StaticString = #filePath, line: UInt = #line) {
    var info = stat()
    XCTAssertEqual(lstat(path, &info), 0, "\(path) is gone", file: file, line: line)
    XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "\(path) is no longer a character device", file: file, line: line)
    XCTAssertEqual(UInt32((info.st_rdev >> 8) & 0xFFF), major, "\(path) major", file: file, line: line)
    XCTAssertEqual(UInt32((info.st_rdev & 0xFF) | ((info.st_rdev >> 12) & 0xFFF00)), minor, "\(path) minor", file: file, line: line)
    let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
        .filter { $0.hasPrefix(".\((path as NSString).lastPathComponent).") }
    XCTAssertEqual(leftovers, [], "temporary files left in /dev", file: file, line: line)
}

/// Skips, without writing anything, unless `path` is a character device: a machine whose
/// /dev/null or /dev/full was already replaced by a regular file would only get that file
/// rewritten. The message says how to repair it.
func requireDevice(_ path: String, _ node: String) throws {
    var info = stat()
    let isDevice = lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFCHR
    try XCTSkipUnless(isDevice, "\(path) is not a character device on this machine; recreate it: rm -f \(path); mknod -m 666 \(path) \(node)")
}
