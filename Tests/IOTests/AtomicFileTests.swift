import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, items 1 and 4, in the library: `AtomicFile` (which `NPY.write`,
/// `SafetensorsWriter.write` and `PNGWriter.write` go through) replaces regular files
/// atomically and writes devices, FIFOs and sockets in place — never replacing
/// `/dev/null` — and turns every write error into an `ElucidateError`, leaving no
/// temporary file behind. Runs as root in CI: every test that writes to a device checks
/// that it is still that device afterwards.
final class AtomicFileTests: TemporaryFolderTestCase {
    private func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    private let tensor = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])

    /// The files in the test folder (hidden temporary files included).
    private func names() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)) }

    /// Fails unless `path` is (still) the character device `major`:`minor`.
    static func assertCharacterDevice(_ path: String, _ major: UInt32, _ minor: UInt32,
                                      file: StaticString = #filePath, line: UInt = #line) {
        var info = stat()
        XCTAssertEqual(lstat(path, &info), 0, "\(path) is gone", file: file, line: line)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "\(path) is no longer a character device", file: file, line: line)
        XCTAssertEqual(UInt32((info.st_rdev >> 8) & 0xFFF), major, "\(path) major", file: file, line: line)
        XCTAssertEqual(UInt32((info.st_rdev & 0xFF) | ((info.st_rdev >> 12) & 0xFFF00)), minor, "\(path) minor", file: file, line: line)
    }

    /// Fails if a temporary file of a write to `name` was left in /dev.
    static func assertNoTemporaryFileInDev(_ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? []).filter { $0.hasPrefix(".\(name).") }
        XCTAssertEqual(leftovers, [], "temporary files left in /dev", file: file, line: line)
    }

    private func assertThrows(_ body: () throws -> Void, mentioning expected: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error (expected one mentioning \(expected))", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(expected), "\(error) lacks \(expected)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "\(error) is not one line", file: file, line: line)
        }
    }

    // MARK: Item 1: devices are written in place, never replaced

    func testDevNullIsWrittenInPlaceNotReplaced() throws {
        try requireDevice("/dev/null", "c 1 3")
        XCTAssertEqual(try AtomicFile.destination(of: URL(fileURLWithPath: "/dev/null")),
                       .inPlace(path: "/dev/null", kind: .characterDevice))
        try NPY.write(tensor, to: URL(fileURLWithPath: "/dev/null"))
        try SafetensorsWriter.write(["a": tensor], to: URL(fileURLWithPath: "/dev/null"))
        try PNGWriter.write(Canvas(width: 2, height: 2, pixels: [UInt8](repeating: 200, count: 16)),
                            to: URL(fileURLWithPath: "/dev/null"))
        Self.assertCharacterDevice("/dev/null", 1, 3)
        Self.assertNoTemporaryFileInDev("null")
    }

    func testFullDeviceReportsAFullDisk() throws {
        try requireDevice("/dev/full", "c 1 7")
        assertThrows({ try NPY.write(self.tensor, to: URL(fileURLWithPath: "/dev/full")) },
                     mentioning: "/dev/full: cannot write: No space left on device")
        assertThrows({ try PNGWriter.write(Canvas(width: 1, height: 1, pixels: [0, 0, 0, 255]), to: URL(fileURLWithPath: "/dev/full")) },
                     mentioning: "No space left on device")
        Self.assertCharacterDevice("/dev/full", 1, 7)
        Self.assertNoTemporaryFileInDev("full")
    }

    func testSymbolicLinkToADeviceIsWrittenThrough() throws {
        try requireDevice("/dev/null", "c 1 3")
        try FileManager.default.createSymbolicLink(atPath: path("sink.npy"), withDestinationPath: "/dev/null")
        guard case .inPlace(_, .characterDevice) = try AtomicFile.destination(of: url("sink.npy")) else {
            return XCTFail("a link to /dev/null is not written in place")
        }
        try NPY.write(tensor, to: url("sink.npy"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path("sink.npy")), "/dev/null")
        Self.assertCharacterDevice("/dev/null", 1, 3)
    }

    // MARK: Item 1: FIFOs and sockets

    func testFIFOWithAReaderGetsTheBytes() throws {
        XCTAssertEqual(mkfifo(path("pipe"), 0o600), 0)
        // Open the reading end first (non-blocking, so this does not wait for a writer).
        let reader = open(path("pipe"), O_RDONLY | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(reader, 0)
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) & ~O_NONBLOCK)
        // A writer of our own until the write is done, so that the reader does not see the
        // end of the file before the write starts.
        let holder = open(path("pipe"), O_WRONLY)
        let received = ReadAll(reader)
        try NPY.write(tensor, to: url("pipe"))
        close(holder)
        XCTAssertEqual(received.wait(seconds: 10), NPY.encode(tensor))
        close(reader)
        XCTAssertEqual(FileKind.of(path("pipe")).kind, .fifo, "the FIFO was replaced")
    }

    func testFIFOWithoutAReaderIsRefusedAtOnce() throws {
        XCTAssertEqual(mkfifo(path("pipe"), 0o600), 0)
        let started = Date()
        assertThrows({ try NPY.write(self.tensor, to: self.url("pipe")) }, mentioning: "FIFO (named pipe) that no process is reading")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        XCTAssertEqual(FileKind.of(path("pipe")).kind, .fifo)
        XCTAssertEqual(try names(), ["pipe"])
    }

    func testUnixSocketIsWrittenToItsListener() throws {
        let socketPath = path("s.sock")
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        try XCTSkipIf(bytes.count >= MemoryLayout.size(ofValue: address.sun_path), "temporary folder path too long for a socket")
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 1), 0)
        let received = ReadAll(accepting: listener)
        try NPY.write(tensor, to: URL(fileURLWithPath: socketPath))
        XCTAssertEqual(received.wait(seconds: 10), NPY.encode(tensor))
        XCTAssertEqual(FileKind.of(socketPath).kind, .socket, "the socket was replaced")
    }

    // MARK: Item 1: symbolic links and folders

    func testSymbolicLinkToARegularFileIsFollowedAndKept() throws {
        try Data("old".utf8).write(to: url("target.npy"))
        try FileManager.default.createSymbolicLink(atPath: path("link.npy"), withDestinationPath: "target.npy")
        XCTAssertEqual(try AtomicFile.destination(of: url("link.npy")), .regularFile(path: path("target.npy")))
        try NPY.write(tensor, to: url("link.npy"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path("link.npy")), "target.npy")
        XCTAssertEqual(try Data(contentsOf: url("target.npy")), NPY.encode(tensor))
        XCTAssertEqual(try names(), ["link.npy", "target.npy"])
    }

    func testDanglingSymbolicLinkIsRefused() throws {
        try FileManager.default.createSymbolicLink(atPath: path("link.npy"), withDestinationPath: "missing.npy")
        assertThrows({ try NPY.write(self.tensor, to: self.url("link.npy")) }, mentioning: "which does not exist")
        XCTAssertEqual(try names(), ["link.npy"])
    }

    func testSomeoneElsesLinkInAStickyWorldWritableFolderIsRefused() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root to make a link owned by another user")
        let sticky = url("sticky")
        try FileManager.default.createDirectory(at: sticky, withIntermediateDirectories: false)
        XCTAssertEqual(chmod(sticky.path, 0o1777), 0)
        try Data("precious".utf8).write(to: url("precious"))
        let link = sticky.appendingPathComponent("out.npy").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path("precious"))
        XCTAssertEqual(lchown(link, 12345, 12345), 0)
        assertThrows({ try NPY.write(self.tensor, to: URL(fileURLWithPath: link)) }, mentioning: "owned by another user")
        XCTAssertEqual(try Data(contentsOf: url("precious")), Data("precious".utf8))
    }

    func testFoldersAndMissingFoldersAreRefused() throws {
        assertThrows({ try NPY.write(self.tensor, to: self.folder) }, mentioning: "is a folder, not a file")
        assertThrows({ try NPY.write(self.tensor, to: self.url("no/such/x.npy")) }, mentioning: "does not exist")
    }

    func testReplacingKeepsPermissionsAndNeverTouchesAnInput() throws {
        try Data("old".utf8).write(to: url("out.npy"))
        XCTAssertEqual(chmod(path("out.npy"), 0o640), 0)
        try NPY.write(tensor, to: url("out.npy"))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path("out.npy"))[.posixPermissions] as? Int, 0o640)
        // A hard link to an input is the input.
        XCTAssertEqual(link(path("out.npy"), path("input.npy")), 0)
        assertThrows({ try NPY.write(self.tensor, to: self.url("out.npy"), protectedInputs: [self.url("input.npy")]) },
                     mentioning: "refusing to overwrite an input file")
    }

    // MARK: Item 4: write errors

    /// A file size limit (`ulimit -f`) makes the write fail with EFBIG part-way: the error
    /// is reported (SIGXFSZ does not kill the process), the temporary file is removed and
    /// the destination keeps its old content.
    func testWriteErrorLeavesNoPartialFile() throws {
        try Data("old".utf8).write(to: url("out.npy"))
        let big = Tensor(shape: [4096], values: [Float](repeating: 1, count: 4096))
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        var limited = saved
        limited.rlim_cur = 4096
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited), 0)
        var caught: Error?
        do { try NPY.write(big, to: url("out.npy")) } catch { caught = error }
        do { try NPY.write(big, to: url("new.npy")) } catch { caught = caught ?? error }
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        XCTAssertTrue("\(caught.map { "\($0)" } ?? "no error")".contains("cannot write: File too large"), "\(String(describing: caught))")
        XCTAssertEqual(try Data(contentsOf: url("out.npy")), Data("old".utf8))
        XCTAssertEqual(try names(), ["out.npy"], "a temporary or partial file was left")
    }

    func testStandardOutputErrorsAreReported() throws {
        try requireDevice("/dev/full", "c 1 7")
        let saved = dup(STDOUT_FILENO)
        defer { dup2(saved, STDOUT_FILENO); close(saved) }
        // A full device.
        let full = open("/dev/full", O_WRONLY)
        try XCTSkipIf(full < 0, "no /dev/full")
        fflush(nil)
        dup2(full, STDOUT_FILENO)
        close(full)
        var caught = ""
        do { try StandardOutput.write("report\n") } catch { caught = "\(error)" }
        // A pipe whose reader has gone: EPIPE, not death by SIGPIPE.
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        close(ends[0])
        dup2(ends[1], STDOUT_FILENO)
        close(ends[1])
        var brokenPipe = ""
        do { try StandardOutput.write("report\n") } catch { brokenPipe = "\(error)" }
        dup2(saved, STDOUT_FILENO)
        XCTAssertEqual(caught, "cannot write to the standard output: No space left on device")
        XCTAssertEqual(brokenPipe, "cannot write to the standard output: Broken pipe")
        Self.assertCharacterDevice("/dev/full", 1, 7)
    }

    // MARK: Inputs: only regular files, never waited on

    func testInputsMustBeRegularFilesAndFIFOsDoNotHang() throws {
        XCTAssertEqual(mkfifo(path("pipe"), 0o600), 0)
        let started = Date()
        assertThrows({ _ = try NPY.read(self.url("pipe")) }, mentioning: "is a FIFO (named pipe), not a regular file; expected a .npy file")
        assertThrows({ _ = try ImageDecoder.load(self.url("pipe")) }, mentioning: "not a regular file")
        assertThrows({ _ = try Classifier.load(from: self.url("pipe")) }, mentioning: "is a FIFO (named pipe), not a regular file")
        assertThrows({ _ = try SafetensorsFile(url: self.url("pipe")) }, mentioning: "not a regular file")
        XCTAssertFalse(TorchCheckpoint.looksLikeCheckpoint(at: url("pipe")))
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        if FileManager.default.fileExists(atPath: "/dev/zero") {
            assertThrows({ _ = try readFileBytes(URL(fileURLWithPath: "/dev/zero")) }, mentioning: "/dev/zero: is a character device, not a regular file")
        }
        try FileManager.default.createSymbolicLink(atPath: path("dangling.npy"), withDestinationPath: "missing.npy")
        assertThrows({ _ = try NPY.read(self.url("dangling.npy")) }, mentioning: "is a symbolic link to a file that does not exist")
        // Through a link to a regular file: read.
        try NPY.write(tensor, to: url("x.npy"))
        try FileManager.default.createSymbolicLink(atPath: path("link.npy"), withDestinationPath: "x.npy")
        XCTAssertEqual(try NPY.readFloat32(url("link.npy")).scalars, tensor.scalars)
    }

    // MARK: Item 7: pickles are recognised as pickles

    func testPlainPickleIsNamedAndSafetensorsWithPickleLikeLengthIsNot() throws {
        // pickle.dumps({'fc.weight': 1}, protocol=4)
        let pickle = Data([0x80, 0x04, 0x95, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x7D, 0x94, 0x8C, 0x09]
                          + Array("fc.weight".utf8) + [0x94, 0x4B, 0x01, 0x73, 0x2E])
        XCTAssertTrue(TorchCheckpoint.looksLikeCheckpoint(pickle))
        try pickle.write(to: url("weights.pkl"))
        assertThrows({ _ = try Classifier.load(from: self.url("weights.pkl")) },
                     mentioning: "is a plain Python pickle (as pickle.dump writes), not a PyTorch zip checkpoint; re-save it")
        // A safetensors file whose 640-byte header makes it start 80 02 like a pickle.
        var header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        header += String(repeating: " ", count: 640 - header.utf8.count)
        var file = Data([0x80, 0x02, 0, 0, 0, 0, 0, 0]) + Data(header.utf8)
        file.append(contentsOf: [0, 0, 0x80, 0x3F])
        XCTAssertFalse(TorchCheckpoint.looksLikeCheckpoint(file))
        try file.write(to: url("a.safetensors"))
        XCTAssertEqual(try SafetensorsFile(url: url("a.safetensors")).tensor("a").scalars, [1])
    }

    // MARK: Item 5: text from files is shown escaped

    func testTerminalTextEscapesControlCharacters() {
        XCTAssertEqual(TerminalText.escaped("\u{1B}]0;pwned\u{07}cat"), "\\x1b]0;pwned\\x07cat")
        XCTAssertEqual(TerminalText.escaped("\u{1B}[2J\r\n\t\u{7F}\u{9B}2J"), "\\x1b[2J\\x0d\\x0a\\x09\\x7f\\x9b2J")
        XCTAssertEqual(TerminalText.escaped("Ankle boot — Stiefel, 靴, ü"), "Ankle boot — Stiefel, 靴, ü")
        XCTAssertEqual(TerminalText.escaped("abcdef", limit: 3), "abc…")
        XCTAssertTrue(TerminalText.hasControlCharacters("a\u{85}"))
        XCTAssertFalse(TerminalText.hasControlCharacters("plain"))
    }

    func testLabelsAreKeptExactAndShownEscaped() throws {
        let architecture = ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1])
        let labels = ["\u{1B}]0;pwned\u{07}", "\u{1B}[2Jcat"]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: labels), as: UTF8.self)
        try SafetensorsWriter.write(DeterministicWeights.stateDict(architecture, classes: 2).tensors, metadata: ["labels": json],
                                    to: url("m.safetensors"))
        var classifier = try Classifier.load(from: url("m.safetensors"))
        XCTAssertEqual(classifier.labels, labels)
        XCTAssertEqual(classifier.displayLabel(0), "\\x1b]0;pwned\\x07")
        try Data("\u{9B}2Jdog\r\nbird\n".utf8).write(to: url("labels.txt"))
        try classifier.loadLabels(from: url("labels.txt"))
        XCTAssertEqual(classifier.labels, ["\u{9B}2Jdog", "bird"])
        XCTAssertEqual(classifier.displayLabel(0), "\\x9b2Jdog")
        // Names from the file in errors are escaped too.
        try SafetensorsWriter.write(DeterministicWeights.stateDict(architecture, classes: 2).tensors,
                                    metadata: ["preset": "\u{1B}[2J"], to: url("p.safetensors"))
        assertThrows({ _ = try Classifier.load(from: self.url("p.safetensors")) }, mentioning: "preset '\\x1b[2J'")
    }
}

/// Skips, without writing anything, unless `path` is a character device: a machine whose
/// /dev/null or /dev/full was already replaced by a regular file would only get that file
/// rewritten. The message says how to repair it.
private func requireDevice(_ path: String, _ node: String) throws {
    var info = stat()
    let isDevice = lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFCHR
    try XCTSkipUnless(isDevice, "\(path) is not a character device on this machine; recreate it: rm -f \(path); mknod -m 666 \(path) \(node)")
}

/// Reads a descriptor to its end on another thread (accepting one connection first when
/// given a listening socket).
private final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ fd: Int32) {
        Thread.detachNewThread { [self] in
            read(fd)
        }
    }

    init(accepting listener: Int32) {
        Thread.detachNewThread { [self] in
            let connection = accept(listener, nil, nil)
            read(connection)
            close(connection)
        }
    }

    private func read(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            data.append(contentsOf: buffer[..<count])
        }
        done.signal()
    }

    /// What was read, or nil if the writer did not finish within `seconds`.
    func wait(seconds: Double) -> Data? {
        done.wait(timeout: .now() + seconds) == .success ? data : nil
    }
}

private extension FileLookup {
    var kind: FileKind? {
        if case .found(let kind, _) = self { return kind }
        return nil
    }
}
