import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, items 1 and 4: outputs that are devices, FIFOs or symbolic links, and write
/// errors. `--attributions /dev/null` (run as root, as CI does) once renamed a temporary
/// file over /dev/null; `--attributions /dev/full` printed "wrote /dev/full" and exited 0;
/// a report to a full stdout was lost silently. Now a device is written in place (never
/// replaced), and every failed write — files, pictures, stdout — is one line on stderr and
/// a non-zero exit.
final class OutputSafetyCommandTests: TemporaryFolderTestCase {
    let image = packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path

    private func names() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)) }

    private func explain(_ outputs: [String]) -> [String] { ["explain", "saliency", image, "--quiet"] + outputs }

    // MARK: Item 1

    func testDevNullIsNotReplaced() throws {
        try requireDevice("/dev/null", "c 1 3")
        for arguments in [explain(["--attributions", "/dev/null"]), explain(["--visualize", "/dev/null"]),
                          explain(["--attributions", "/dev/null", "--visualize", "/dev/null"]),
                          ["predict", image, "--logits", "/dev/null"]] {
            let result = try runBounded(arguments)
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            assertCharacterDevice("/dev/null", 1, 3)
        }
    }

    func testFIFOOutputFeedsItsReaderOrIsRefusedAtOnce() throws {
        let fifo = path("logits.pipe")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // No reader: refused at once, not waited on.
        let alone = try runBounded(["predict", image, "--logits", fifo], timeout: 60)
        assertOneLineFailure(alone, mentioning: "is a FIFO (named pipe) that no process is reading", "predict --logits FIFO")
        // A reader: it gets the .npy.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(reader, 0)
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) & ~O_NONBLOCK)
        // A writer of our own until the command is done, so that the reader does not see
        // the end of the file before the command starts writing.
        let holder = open(fifo, O_WRONLY)
        XCTAssertGreaterThanOrEqual(holder, 0)
        let handle = FileHandle(fileDescriptor: reader, closeOnDealloc: true)
        nonisolated(unsafe) var received = Data()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { received = handle.readDataToEndOfFile(); done.signal() }
        let result = try runBounded(["predict", image, "--logits", fifo], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stderr)
        close(holder)
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(try NPY.parse(received).float32?.shape, [1, 10])
        var info = stat()
        XCTAssertEqual(lstat(fifo, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO was replaced")
    }

    func testDevStdoutWritesIntoTheOutputStream() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/dev/stdout"))
        let result = try runBounded(["predict", image, "--logits", "/dev/stdout"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.starts(with: [0x93] + Array("NUMPY".utf8)), "stdout does not start with the .npy")
        XCTAssertTrue(result.stdoutText.contains("Sneaker"))
    }

    func testSymbolicLinksAreFollowedToAFileOrRefused() throws {
        // To a regular file: the file is replaced, the link stays.
        try Data("old".utf8).write(to: URL(fileURLWithPath: path("target.npy")))
        try FileManager.default.createSymbolicLink(atPath: path("link.npy"), withDestinationPath: "target.npy")
        let followed = try runBounded(explain(["--attributions", path("link.npy")]))
        XCTAssertEqual(followed.status, 0, followed.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path("link.npy")), "target.npy")
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("target.npy"))).shape, [1, 3, 28, 28])
        // To nothing: refused before any work, nothing created.
        try FileManager.default.createSymbolicLink(atPath: path("dangling.png"), withDestinationPath: "nowhere/x.png")
        let before = try names()
        let dangling = try runBounded(explain(["--visualize", path("dangling.png")]))
        assertOneLineFailure(dangling, mentioning: "which does not exist; no file is created through a symbolic link", "dangling link")
        XCTAssertEqual(try names(), before)
    }

    // MARK: Item 4

    func testFullDeviceFailsEveryOutput() throws {
        try requireDevice("/dev/full", "c 1 7")
        let attr = path("attr.npy")
        let made = try runBounded(explain(["--attributions", attr]))
        XCTAssertEqual(made.status, 0, made.stderr)
        for arguments in [explain(["--attributions", "/dev/full"]), explain(["--visualize", "/dev/full"]),
                          explain(["--attributions", path("a.npy"), "--visualize", "/dev/full"]),
                          ["predict", image, "--logits", "/dev/full"],
                          ["visualize", attr, "--out", "/dev/full"],
                          ["visualize", attr, "--out", path("v.png"), "--normalized-map", "/dev/full"]] {
            let result = try runBounded(arguments)
            assertOneLineFailure(result, mentioning: "/dev/full: cannot write: No space left on device", arguments.joined(separator: " "))
            XCTAssertFalse(result.stdoutText.contains("wrote"), "\(arguments): \(result.stdoutText)")
            assertCharacterDevice("/dev/full", 1, 7)
        }
    }

    func testFullStandardOutputFails() throws {
        try requireDevice("/dev/full", "c 1 7")
        let attr = path("attr.npy")
        XCTAssertEqual(try runBounded(explain(["--attributions", attr])).status, 0)
        for arguments in [["predict", image], ["predict", image, "--json"],
                          explain(["--attributions", path("b.npy")]), explain(["--attributions", path("c.npy"), "--json"]),
                          ["visualize", attr, "--out", path("v.png")], ["models"], ["models", "--json"], ["info"]] {
            let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
            let result = try runBounded(arguments, standardOutput: full)
            try full.close()
            assertOneLineFailure(result, mentioning: "cannot write to the standard output: No space left on device",
                                 arguments.joined(separator: " "))
        }
        assertCharacterDevice("/dev/full", 1, 7)
    }

    /// A write that fails part-way (here the file size limit, `ulimit -f 4`: 4 KiB) leaves
    /// neither a partial destination nor a temporary file, and an existing file as it was.
    func testFailedWriteLeavesNoPartialFile() throws {
        try Data("old".utf8).write(to: URL(fileURLWithPath: path("old.npy")))
        // 3×28×28 float32 attributions: 9 KiB.
        for (arguments, destination) in [(explain(["--attributions", path("new.npy")]), "new.npy"),
                                         (explain(["--attributions", path("old.npy")]), "old.npy"),
                                         (explain(["--visualize", path("big.png"), "--scale", "16"]), "big.png")] {
            let result = try runBounded(arguments, shell: #"ulimit -f 4 && exec "$0" "$@""#)
            assertOneLineFailure(result, mentioning: "\(destination): cannot write: File too large", arguments.joined(separator: " "))
        }
        XCTAssertEqual(try names(), ["old.npy"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("old.npy"))), Data("old".utf8))
    }

    /// Help and version text go through the same checked writes; an error line that cannot
    /// be written (stderr on a full device) still ends in exit status 1, not a crash
    /// (Foundation's FileHandle.write traps on a failed write).
    func testHelpToAFullStdoutAndErrorsToAFullStderr() throws {
        try requireDevice("/dev/full", "c 1 7")
        for arguments in [["--help"], ["predict", "--help"], ["--version"]] {
            let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
            let result = try runBounded(arguments, standardOutput: full)
            try full.close()
            assertOneLineFailure(result, mentioning: "cannot write to the standard output: No space left on device",
                                 arguments.joined(separator: " "))
        }
        for arguments in [["predict", path("missing.png")], ["predict", image, "--top-k", "0"],
                          ["predict", image, "--logits", "/dev/full"]] {
            let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
            let result = try runBounded(arguments, standardError: full)
            try full.close()
            XCTAssertFalse(result.timedOut)
            XCTAssertTrue(result.status == 1 || result.status == 64, "\(arguments): status \(result.status)")
        }
        assertCharacterDevice("/dev/full", 1, 7)
    }

    /// A report to a pipe whose reader has gone is an error, not death by SIGPIPE.
    func testClosedPipeOnStdoutIsAnError() throws {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        close(ends[0])
        let writeEnd = FileHandle(fileDescriptor: ends[1], closeOnDealloc: true)
        let broken = try runBounded(["models"], standardOutput: writeEnd)
        assertOneLineFailure(broken, mentioning: "cannot write to the standard output: Broken pipe", "models | (closed)")
    }
}

private extension NPYArray {
    var float32: Tensor? {
        if case .float32(let tensor) = self { return tensor }
        return nil
    }
}
