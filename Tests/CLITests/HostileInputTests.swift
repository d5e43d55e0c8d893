import Elucidate
import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The crafted-input battery of issue 11: broken and oversized images, hostile safetensors,
/// `.npy`, `.pth` and labels files, bad options, unwritable outputs and absurd sample counts,
/// each run through `elucidate` as a user would. Every case must end as a refusal:
///
/// - an exit status from 1 to 125 (never a signal, never 0),
/// - exactly one line on stderr, `elucidate: …`, naming the file or the option,
/// - no output file and no temporary file left (the output folder stays empty and the input
///   folder keeps exactly its files),
/// - finished within 10 s, with a peak resident size under 1 GB.
///
/// The binary is the one built beside the tests (so never a stale build of other sources);
/// `ELUCIDATE_BATTERY_BINARY` names another, e.g. the release build:
/// `swift build -c release && ELUCIDATE_BATTERY_BINARY=.build/release/elucidate swift test --filter HostileInputTests`.
/// Peak memory is measured by `/usr/bin/time -f %M`
/// (GNU time) between this process and `elucidate`: a child forked or spawned straight from
/// this big test process would inherit its resident size into its `ru_maxrss`. Without GNU
/// time the memory check is skipped, the others still run. The inputs are made at test time
/// in a temporary folder, a few KB each.
final class HostileInputTests: XCTestCase {
    static let timeLimit: TimeInterval = 10
    static let memoryLimitKB = 1_000_000

    /// One crafted case: the arguments (with `$IN/` and `$OUT/` standing for the input and
    /// output folders) and the text the one stderr line must contain.
    struct Case {
        let arguments: [String]
        let mentions: String
        let line: UInt
        init(_ arguments: [String], _ mentions: String, line: UInt = #line) {
            self.arguments = arguments
            self.mentions = mentions
            self.line = line
        }
    }

    struct Outcome {
        let status: Int32  // the exit status, or 128 + signal
        let stderr: String
        let seconds: TimeInterval
        let peakKB: Int?
        let timedOut: Bool
    }

    var root: URL!
    var inputs: URL!
    var outputs: URL!

    override func setUpWithError() throws {
        root = try makeTemporaryDirectory("elucidate-hostile")
        inputs = root.appendingPathComponent("in")
        outputs = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: inputs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    // MARK: the binary and the runner

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["ELUCIDATE_BATTERY_BINARY"] { return path }
        return productsDirectory.appendingPathComponent("elucidate").path
    }

    static let gnuTime: String? = {
        let path = "/usr/bin/time"
        guard FileManager.default.isExecutableFile(atPath: path) else { return nil }
        return path
    }()

    /// Runs `elucidate arguments` in its own process group under GNU time, stdout and stderr
    /// to files, killing the group after `timeLimit` (plus a margin to see it overrun).
    func run(_ arguments: [String], in scratch: URL) throws -> Outcome {
        let outPath = scratch.appendingPathComponent("stdout").path
        let errPath = scratch.appendingPathComponent("stderr").path
        let memPath = scratch.appendingPathComponent("maxrss").path
        var argv = [Self.binary] + arguments
        if let time = Self.gnuTime { argv = [time, "-f", "%M", "-o", memPath, "--"] + argv }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cArguments.forEach { free($0) }; cEnvironment.forEach { free($0) } }

        let start = Date()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        guard spawned == 0 else { throw NSError(domain: "spawn", code: Int(spawned)) }
        var status: Int32 = 0
        var timedOut = false
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { break }
            if Date().timeIntervalSince(start) > Self.timeLimit + 5 {
                timedOut = true
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            usleep(5_000)
        }
        let seconds = Date().timeIntervalSince(start)
        // Kill anything left in the group (nothing should be).
        kill(-pid, SIGKILL)
        let exited = status & 0x7f == 0
        var code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        var peak: Int?
        if Self.gnuTime != nil, let text = try? String(contentsOfFile: memPath, encoding: .utf8) {
            // GNU time writes "Command exited with non-zero status N" or "Command terminated
            // by signal N" before the number; its own status is then the child's or 128 + N.
            let lines = text.split(separator: "\n")
            peak = lines.last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            if let signalLine = lines.first(where: { $0.hasPrefix("Command terminated by signal") }),
               let number = signalLine.split(separator: " ").last.flatMap({ Int32($0) }) {
                code = 128 + number
            }
        }
        return Outcome(status: code, stderr: stderr, seconds: seconds, peakKB: peak, timedOut: timedOut)
    }

    // MARK: crafted files

    func write(_ name: String, _ bytes: Data) throws {
        try bytes.write(to: inputs.appendingPathComponent(name))
    }

    func write(_ name: String, _ text: String) throws { try write(name, Data(text.utf8)) }

    static func crc32(_ bytes: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func bigEndian32(_ value: UInt32) -> Data { withUnsafeBytes(of: value.bigEndian) { Data($0) } }
    static func littleEndian64(_ value: UInt64) -> Data { withUnsafeBytes(of: value.littleEndian) { Data($0) } }

    static func pngChunk(_ kind: String, _ data: Data) -> Data {
        let body = Data(kind.utf8) + data
        return bigEndian32(UInt32(data.count)) + body + bigEndian32(crc32(body))
    }

    /// A PNG whose IHDR claims `width`×`height` RGB, with a tiny (valid) zlib stream of one row.
    static func pngClaiming(width: UInt32, height: UInt32) -> Data {
        let ihdr = bigEndian32(width) + bigEndian32(height) + Data([8, 2, 0, 0, 0])
        let idat = Data([0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01])
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + pngChunk("IHDR", ihdr)
            + pngChunk("IDAT", idat) + pngChunk("IEND", Data())
    }

    /// `jpeg` with its frame header (SOF0/SOF2) claiming `width`×`height`.
    static func jpegClaiming(_ jpeg: Data, width: UInt16, height: UInt16) -> Data {
        var bytes = [UInt8](jpeg)
        var index = 2
        while index + 9 < bytes.count {
            guard bytes[index] == 0xFF else { index += 1; continue }
            let marker = bytes[index + 1]
            let length = Int(bytes[index + 2]) << 8 | Int(bytes[index + 3])
            if (0xC0...0xC2).contains(marker) {
                bytes[index + 5] = UInt8(height >> 8); bytes[index + 6] = UInt8(height & 0xFF)
                bytes[index + 7] = UInt8(width >> 8); bytes[index + 8] = UInt8(width & 0xFF)
                break
            }
            index += 2 + length
        }
        return Data(bytes)
    }

    static func safetensors(header: String, data: Data = Data(count: 16), length: UInt64? = nil) -> Data {
        let json = Data(header.utf8)
        return littleEndian64(length ?? UInt64(json.count)) + json + data
    }

    static func npy(header: String, data: Data = Data(count: 16), magic: String = "\u{93}NUMPY") -> Data {
        var text = header
        while (10 + text.utf8.count + 1) % 64 != 0 { text += " " }
        text += "\n"
        var bytes = Data([0x93]) + Data(magic.dropFirst().utf8) + Data([1, 0])
        bytes += withUnsafeBytes(of: UInt16(text.utf8.count).littleEndian) { Data($0) }
        return bytes + Data(text.utf8) + data
    }

    /// A protocol-2 pickle of `{name: _rebuild_tensor_v2(storage('0', numel), 0, shape, strides)}`,
    /// torch.save's layout, with its integers as 8-byte LONG1 so any size can be claimed.
    static func tensorPickle(numel: UInt64, shape: [UInt64], storageType: String = "FloatStorage", offset: UInt64 = 0) -> Data {
        var p = Data([0x80, 0x02])
        func global(_ module: String, _ name: String) { p += Data("c\(module)\n\(name)\n".utf8) }
        func unicode(_ text: String) { p += Data([0x58]) + withUnsafeBytes(of: UInt32(text.utf8.count).littleEndian) { Data($0) } + Data(text.utf8) }
        func long(_ value: UInt64) { p += Data([0x8A, 9]) + littleEndian64(value) + Data([0]) }
        global("collections", "OrderedDict"); p += Data([0x29, 0x52])  // EMPTY_TUPLE REDUCE
        p += Data([0x28]); unicode("w")
        global("torch._utils", "_rebuild_tensor_v2")
        p += Data([0x28, 0x28]); unicode("storage"); global("torch", storageType); unicode("0"); unicode("cpu"); long(numel)
        p += Data([0x74, 0x51])  // TUPLE BINPERSID
        long(offset)
        p += Data([0x28]); shape.forEach(long); p += Data([0x74])
        var strides: [UInt64] = Array(repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) where axis >= 0 { strides[axis] = strides[axis + 1] &* shape[axis + 1] }
        p += Data([0x28]); strides.forEach(long); p += Data([0x74])
        p += Data([0x89]); global("collections", "OrderedDict"); p += Data([0x29, 0x52])
        p += Data([0x74, 0x52])  // TUPLE REDUCE
        p += Data([0x75, 0x2E])  // SETITEMS STOP
        return p
    }

    static func torchZip(_ pickle: Data, storage: Data = Data(count: 64)) -> Data {
        ZipArchive.storedArchive([("archive/data.pkl", pickle), ("archive/byteorder", Data("little".utf8)),
                                  ("archive/data/0", storage), ("archive/version", Data("3\n".utf8))])
    }

    /// A protocol-0 pickle that calls `module.name(argument)` on load.
    static func callingPickle(_ module: String, _ name: String, _ argument: String) -> Data {
        Data("c\(module)\n\(name)\n(S'\(argument)'\ntR.".utf8)
    }

    func makeInputs() throws {
        let images = packageRootURL.appendingPathComponent("Tests/Fixtures/images")
        let png = try Data(contentsOf: images.appendingPathComponent("gray.png"))
        let jpeg = try Data(contentsOf: images.appendingPathComponent("gray.jpg"))
        try write("ok.png", png)
        try write("ok.jpg", jpeg)
        try write("truncated.png", png.prefix(png.count / 2))
        try write("truncated.jpg", jpeg.prefix(jpeg.count / 2))
        try write("header-only.png", png.prefix(33))
        try write("header-only.jpg", jpeg.prefix(20))
        try write("huge.png", Self.pngClaiming(width: 60_000, height: 60_000))
        try write("huge-wide.png", Self.pngClaiming(width: 0x7FFF_FFFF, height: 1))
        try write("zero-size.png", Self.pngClaiming(width: 0, height: 0))
        try write("huge.jpg", Self.jpegClaiming(jpeg, width: 60_000, height: 60_000))
        try write("zero-height.jpg", Self.jpegClaiming(jpeg, width: 16, height: 0))
        try write("empty.png", Data())
        try write("empty.jpg", Data())
        try write("text.png", "this is not a picture\n")
        try write("text.jpg", "this is not a picture either\n")
        try write("garbage.png", Data((0..<4_096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }))
        var badCRC = [UInt8](png)
        badCRC[29] ^= 0xFF
        try write("bad-crc.png", Data(badCRC))

        // safetensors
        try write("empty.safetensors", Data())
        try write("short.safetensors", Data([1, 2, 3]))
        try write("absurd-length.safetensors", Self.safetensors(header: "{}", length: UInt64.max))
        try write("long-length.safetensors", Self.safetensors(header: "{}", length: 1 << 40))
        try write("huge-tensor.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[536870912],"data_offsets":[0,2147483648]}}"#))
        try write("overflow-shape.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#))
        try write("offsets-out.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,4096]}}"#))
        try write("offsets-reversed.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[16,8]}}"#))
        try write("offsets-mismatch.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#))
        try write("wrong-dtype.safetensors", Self.safetensors(header: #"{"w":{"dtype":"Q99","shape":[4],"data_offsets":[0,16]}}"#))
        try write("duplicate.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#))
        try write("not-json.safetensors", Self.safetensors(header: "this is not json at all"))
        try write("json-array.safetensors", Self.safetensors(header: "[1,2,3]"))
        try write("negative-shape.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#))
        try write("deep.safetensors", Self.safetensors(header: String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)))
        try write("no-weights.safetensors", Self.safetensors(header: #"{"__metadata__":{"a":"b"}}"#, data: Data()))

        // .npy
        try write("bad-magic.npy", Self.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", magic: "\u{93}NUMPX"))
        try write("empty.npy", Data())
        try write("f8.npy", Self.npy(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3, 2, 2), }", data: Data(count: 96)))
        try write("object.npy", Self.npy(header: "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"))
        try write("fortran.npy", Self.npy(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3, 2, 2), }", data: Data(count: 48)))
        try write("huge-shape.npy", Self.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 1048576, 349526), }"))
        try write("overflow-shape.npy", Self.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"))
        try write("truncated.npy", Self.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 28, 28), }", data: Data(count: 100)))
        try write("bad-header.npy", Self.npy(header: "{'descr': '<f4', 'fortran_order': __import__('os'), 'shape': (4,), }"))
        try write("text.npy", "1 2 3 4\n")

        // .pth
        try write("not-zip.pth", "PK but not a zip archive, just text\n")
        try write("empty.pth", Data())
        let marker = root.appendingPathComponent("pwned").path
        try write("os-system.pth", Self.torchZip(Self.callingPickle("os", "system", "touch \(marker)")))
        try write("posix-system.pth", Self.torchZip(Self.callingPickle("posix", "system", "touch \(marker)")))
        try write("eval.pth", Self.torchZip(Self.callingPickle("builtins", "eval", "open('\(marker)','w')")))
        try write("popen.pth", Self.torchZip(Self.callingPickle("subprocess", "Popen", "touch \(marker)")))
        try write("os-system.pkl", Self.callingPickle("os", "system", "touch \(marker)"))
        let valid = Self.torchZip(Self.tensorPickle(numel: 16, shape: [4, 4]))
        try write("truncated.pth", valid.prefix(valid.count / 2))
        try write("absurd-storage.pth", Self.torchZip(Self.tensorPickle(numel: 1 << 40, shape: [1 << 20, 1 << 20])))
        try write("overflow-storage.pth", Self.torchZip(Self.tensorPickle(numel: UInt64.max / 2, shape: [UInt64.max / 4, 2])))
        try write("offset-out.pth", Self.torchZip(Self.tensorPickle(numel: 16, shape: [4, 4], offset: 1 << 50)))
        try write("storage-type.pth", Self.torchZip(Self.tensorPickle(numel: 16, shape: [4, 4], storageType: "EvilStorage")))
        try write("tensor-only.pth", valid)
        var corrupted = [UInt8](valid)
        corrupted[40] ^= 0x55
        try write("bad-crc.pth", Data(corrupted))

        try NPY.write(Tensor(shape: [2, 3, 28, 28], repeating: 0), to: inputs.appendingPathComponent("baselines.npy"))

        // labels
        try write("empty.txt", Data())
        try write("three.txt", "a\nb\nc\n")
        try write("huge-line.txt", String(repeating: "x", count: 5_000_000) + "\n")
        try write("nul.txt", Data([0, 0, 0, 0xFF, 0xFE, 0x0A]))
    }

    // MARK: the cases

    func cases() -> [Case] {
        let png = "$IN/ok.png"
        let occlusion = ["explain", "occlusion", png, "--window", "3,5,5", "--stride", "3,5,5", "--quiet"]
        var table: [Case] = [
            // images
            Case(["predict", "$IN/truncated.png"], "truncated.png"),
            Case(["predict", "$IN/truncated.jpg"], "truncated.jpg"),
            Case(["predict", "$IN/header-only.png"], "header-only.png"),
            Case(["predict", "$IN/header-only.jpg"], "header-only.jpg"),
            Case(["predict", "$IN/huge.png"], "huge.png"),
            Case(["predict", "$IN/huge-wide.png"], "huge-wide.png"),
            Case(["predict", "$IN/zero-size.png"], "zero-size.png"),
            Case(["predict", "$IN/huge.jpg"], "huge.jpg"),
            Case(["predict", "$IN/zero-height.jpg"], "zero-height.jpg"),
            Case(["predict", "$IN/empty.png"], "empty.png"),
            Case(["predict", "$IN/empty.jpg"], "empty.jpg"),
            Case(["predict", "$IN/text.png"], "text.png"),
            Case(["predict", "$IN/text.jpg"], "text.jpg"),
            Case(["predict", "$IN/garbage.png"], "garbage.png"),
            Case(["predict", "$IN/bad-crc.png"], "bad-crc.png"),
            Case(["predict", "$IN/missing.png"], "missing.png"),
            Case(["predict", "$IN"], "in"),
            Case(["explain", "saliency", "$IN/huge.png", "--attributions", "$OUT/a.npy"], "huge.png"),
            Case(["explain", "integrated-gradients", "$IN/truncated.jpg", "--attributions", "$OUT/a.npy"], "truncated.jpg"),
            Case(["visualize", "$IN/f8.npy", "--image", "$IN/huge.jpg", "--out", "$OUT/v.png"], "npy"),
            Case(["predict", "--exif", "apply", "$IN/huge.jpg"], "huge.jpg"),
            // safetensors
            Case(["predict", "--model", "$IN/empty.safetensors", png], "empty.safetensors"),
            Case(["predict", "--model", "$IN/short.safetensors", png], "short.safetensors"),
            Case(["predict", "--model", "$IN/absurd-length.safetensors", png], "absurd-length.safetensors"),
            Case(["predict", "--model", "$IN/long-length.safetensors", png], "long-length.safetensors"),
            Case(["predict", "--model", "$IN/huge-tensor.safetensors", png], "huge-tensor.safetensors"),
            Case(["predict", "--model", "$IN/overflow-shape.safetensors", png], "overflow-shape.safetensors"),
            Case(["predict", "--model", "$IN/offsets-out.safetensors", png], "offsets-out.safetensors"),
            Case(["predict", "--model", "$IN/offsets-reversed.safetensors", png], "offsets-reversed.safetensors"),
            Case(["predict", "--model", "$IN/offsets-mismatch.safetensors", png], "offsets-mismatch.safetensors"),
            Case(["predict", "--model", "$IN/wrong-dtype.safetensors", png], "wrong-dtype.safetensors"),
            Case(["predict", "--model", "$IN/duplicate.safetensors", png], "duplicate.safetensors"),
            Case(["predict", "--model", "$IN/not-json.safetensors", png], "not-json.safetensors"),
            Case(["predict", "--model", "$IN/json-array.safetensors", png], "json-array.safetensors"),
            Case(["predict", "--model", "$IN/negative-shape.safetensors", png], "negative-shape.safetensors"),
            Case(["predict", "--model", "$IN/deep.safetensors", png], "deep.safetensors"),
            Case(["predict", "--model", "$IN/no-weights.safetensors", png], "no-weights.safetensors"),
            Case(["predict", "--model", "$IN/text.png", png], "text.png"),
            Case(["explain", "saliency", "--model", "$IN/huge-tensor.safetensors", png, "--attributions", "$OUT/a.npy"], "huge-tensor.safetensors"),
            // .npy
            Case(["predict", "--input-tensor", "$IN/bad-magic.npy"], "bad-magic.npy"),
            Case(["predict", "--input-tensor", "$IN/empty.npy"], "empty.npy"),
            Case(["predict", "--input-tensor", "$IN/f8.npy"], "f8.npy"),
            Case(["predict", "--input-tensor", "$IN/object.npy"], "object.npy"),
            Case(["predict", "--input-tensor", "$IN/fortran.npy"], "fortran.npy"),
            Case(["predict", "--input-tensor", "$IN/huge-shape.npy"], "huge-shape.npy"),
            Case(["predict", "--input-tensor", "$IN/overflow-shape.npy"], "overflow-shape.npy"),
            Case(["predict", "--input-tensor", "$IN/truncated.npy"], "truncated.npy"),
            Case(["predict", "--input-tensor", "$IN/bad-header.npy"], "bad-header.npy"),
            Case(["predict", "--input-tensor", "$IN/text.npy"], "text.npy"),
            Case(["visualize", "$IN/huge-shape.npy", "--out", "$OUT/v.png"], "huge-shape.npy"),
            Case(["visualize", "$IN/object.npy", "--out", "$OUT/v.png"], "object.npy"),
            Case(["visualize", "$IN/truncated.npy", "--out", "$OUT/v.png"], "truncated.npy"),
            Case(["explain", "integrated-gradients", png, "--baseline", "$IN/f8.npy", "--attributions", "$OUT/a.npy"], "f8.npy"),
            Case(["explain", "integrated-gradients", png, "--baseline", "$IN/huge-shape.npy", "--attributions", "$OUT/a.npy"], "huge-shape.npy"),
            Case(["explain", "gradient-shap", png, "--baselines", "$IN/truncated.npy", "--attributions", "$OUT/a.npy"], "truncated.npy"),
            Case(["explain", "feature-ablation", png, "--feature-mask", "$IN/object.npy", "--attributions", "$OUT/a.npy"], "object.npy"),
            Case(["explain", "feature-ablation", png, "--feature-mask", "$IN/huge-shape.npy", "--attributions", "$OUT/a.npy"], "huge-shape.npy"),
            // .pth
            Case(["predict", "--model", "$IN/not-zip.pth", png], "not-zip.pth"),
            Case(["predict", "--model", "$IN/empty.pth", png], "empty.pth"),
            Case(["predict", "--model", "$IN/os-system.pth", png], "os-system.pth"),
            Case(["predict", "--model", "$IN/posix-system.pth", png], "posix-system.pth"),
            Case(["predict", "--model", "$IN/eval.pth", png], "eval.pth"),
            Case(["predict", "--model", "$IN/popen.pth", png], "popen.pth"),
            Case(["predict", "--model", "$IN/os-system.pkl", png], "os-system.pkl"),
            Case(["predict", "--model", "$IN/truncated.pth", png], "truncated.pth"),
            Case(["predict", "--model", "$IN/absurd-storage.pth", png], "absurd-storage.pth"),
            Case(["predict", "--model", "$IN/overflow-storage.pth", png], "overflow-storage.pth"),
            Case(["predict", "--model", "$IN/offset-out.pth", png], "offset-out.pth"),
            Case(["predict", "--model", "$IN/storage-type.pth", png], "storage-type.pth"),
            Case(["predict", "--model", "$IN/tensor-only.pth", png], "tensor-only.pth"),
            Case(["predict", "--model", "$IN/bad-crc.pth", png], "bad-crc.pth"),
            // labels
            Case(["predict", "--labels", "$IN/empty.txt", png], "empty.txt"),
            Case(["predict", "--labels", "$IN/three.txt", png], "three.txt"),
            Case(["predict", "--labels", "$IN/huge-line.txt", png], "huge-line.txt"),
            Case(["predict", "--labels", "$IN/nul.txt", png], "nul.txt"),
            Case(["predict", "--labels", "$IN/missing.txt", png], "missing.txt"),
            // options
            Case(["predict", "--top-k", "0", png], "top-k"),
            Case(["predict", "--top-k", "-3", png], "top-k"),
            Case(["predict", "--threads", "0", png], "threads"),
            Case(["predict", "--threads", "-1", png], "threads"),
            Case(["predict", "--preset", "bogus", png], "bogus"),
            Case(["predict", "--exif", "sideways", png], "sideways"),
            Case(["predict", "--arch", "resnet7", png], "resnet7"),
            Case(["predict", "--frobnicate", png], "frobnicate"),
            Case(["explain", "saliency", png, "--target", "99", "--attributions", "$OUT/a.npy"], "target"),
            Case(["explain", "saliency", png, "--target", "-1", "--attributions", "$OUT/a.npy"], "target"),
            Case(["explain", "integrated-gradients", png, "--steps", "0", "--attributions", "$OUT/a.npy"], "steps"),
            Case(["explain", "integrated-gradients", png, "--steps", "-5", "--attributions", "$OUT/a.npy"], "steps"),
            Case(["explain", "integrated-gradients", png, "--quadrature", "simpson", "--attributions", "$OUT/a.npy"], "simpson"),
            Case(["explain", "integrated-gradients", png, "--noise-tunnel", "smoothgrad-cubed", "--attributions", "$OUT/a.npy"], "smoothgrad-cubed"),
            Case(["explain", "integrated-gradients", png, "--noise-tunnel", "smoothgrad", "--nt-samples", "0", "--attributions", "$OUT/a.npy"], "nt-samples"),
            Case(["explain", "gradient-shap", png, "--samples", "0", "--attributions", "$OUT/a.npy"], "samples"),
            Case(["explain", "gradient-shap", png, "--samples", "-7", "--attributions", "$OUT/a.npy"], "samples"),
            Case(["explain", "telepathy", png], "telepathy"),
            Case(occlusion.dropLast(5) + ["--window", "3,100,100", "--stride", "3,1,1", "--attributions", "$OUT/a.npy"], "window"),
            Case(occlusion.dropLast(5) + ["--window", "3,5,5", "--stride", "0,0,0", "--attributions", "$OUT/a.npy"], "stride"),
            Case(occlusion.dropLast(5) + ["--window", "3,x,5", "--stride", "3,1,1", "--attributions", "$OUT/a.npy"], "window"),
            Case(["explain", "feature-ablation", png, "--grid", "0", "--attributions", "$OUT/a.npy"], "grid"),
            Case(["explain", "feature-ablation", png, "--grid", "1000", "--attributions", "$OUT/a.npy"], "grid"),
            Case(["explain", "lime", png, "--superpixels", "0", "--attributions", "$OUT/a.npy"], "superpixels"),
            Case(["explain", "lime", png, "--grid", "2", "--surrogate", "oracle", "--attributions", "$OUT/a.npy"], "surrogate"),
            Case(["visualize", "$IN/ok.png", "--out", "$OUT/v.png"], "ok.png"),
            Case(["visualize", "$IN/baselines.npy", "--out", "$OUT/v.png", "--scale", "0"], "scale"),
            Case(["visualize", "$IN/baselines.npy", "--out", "$OUT/v.png", "--scale", "65"], "scale"),
            Case(["visualize", "$IN/baselines.npy", "--out", "$OUT/v.png", "--index", "5"], "item 5"),
            Case(["visualize", "$IN/baselines.npy", "--out", "$OUT/v.png", "--panels", "heat-map:sideways"], "sideways"),
            Case(["visualize", "$IN/baselines.npy", "--out", "/proc/version"], "/proc/version"),
            Case(["visualize", "$IN/baselines.npy", "--out", "$OUT/missing/v.png"], "missing"),
            // absurd sample counts where the surrogate fit refuses
            Case(["explain", "kernel-shap", png, "--grid", "4", "--samples", "1000000000", "--attributions", "$OUT/a.npy"], "samples"),
            Case(["explain", "lime", png, "--grid", "4", "--samples", "1000000000", "--attributions", "$OUT/a.npy"], "samples"),
            Case(["explain", "kernel-shap", png, "--superpixels", "20", "--samples", "4000000000", "--attributions", "$OUT/a.npy"], "samples"),
            // outputs
            Case(["explain", "saliency", png, "--attributions", "$OUT"], "out"),
            Case(["explain", "saliency", png, "--attributions", "$OUT/missing/a.npy"], "missing"),
            Case(["explain", "saliency", png, "--attributions", "/proc/version"], "/proc/version"),
            Case(["predict", png, "--logits", "$OUT/missing/l.npy"], "missing"),
            Case(["predict", png, "--logits", "/proc/version"], "/proc/version"),
            Case(occlusion + ["--visualize", "$OUT/missing/v.png"], "missing"),
            Case(["explain", "saliency", png, "--visualize", "$OUT"], "out"),
        ]
        // Every method on a broken image and with an unwritable output.
        for method in ["saliency", "input-x-gradient", "integrated-gradients", "gradient-shap", "deeplift",
                       "deeplift-shap", "guided-backprop", "deconvolution", "feature-ablation",
                       "shapley-value-sampling", "kernel-shap", "lime"] {
            let extra = method == "deeplift-shap" ? ["--baselines", "$IN/baselines.npy"]
                : ["feature-ablation", "shapley-value-sampling", "kernel-shap", "lime"].contains(method) ? ["--grid", "4"] : []
            table.append(Case(["explain", method, "$IN/truncated.png", "--attributions", "$OUT/a.npy", "--quiet"] + extra, "truncated.png"))
            table.append(Case(["explain", method, png, "--attributions", "/proc/version", "--quiet"] + extra, "/proc/version"))
        }
        return table
    }

    func testCraftedInputsAreRefusedCleanly() throws {
        try makeInputs()
        let scratch = root.appendingPathComponent("scratch")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let inputNames = Set(try FileManager.default.contentsOfDirectory(atPath: inputs.path))
        let marker = root.appendingPathComponent("pwned").path
        var slowest = (0.0, ""), heaviest = (0, "")
        let table = cases()
        for test in table {
            let arguments = test.arguments.map {
                $0.replacingOccurrences(of: "$IN", with: inputs.path).replacingOccurrences(of: "$OUT", with: outputs.path)
            }
            let command = "elucidate " + test.arguments.joined(separator: " ")
            let outcome = try run(arguments, in: scratch)
            let file: StaticString = #filePath
            XCTAssertFalse(outcome.timedOut, "\(command): hung, killed", file: file, line: test.line)
            XCTAssertTrue((1...125).contains(outcome.status), "\(command): exit status \(outcome.status); stderr \(outcome.stderr)", file: file, line: test.line)
            let lines = outcome.stderr.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertTrue(lines.count == 2 && lines[1].isEmpty && outcome.stderr.hasPrefix("elucidate: "),
                          "\(command): stderr is not one line: \(outcome.stderr.prefix(600))", file: file, line: test.line)
            XCTAssertTrue(outcome.stderr.contains(test.mentions),
                          "\(command): stderr does not name \(test.mentions): \(outcome.stderr.prefix(600))", file: file, line: test.line)
            XCTAssertLessThan(outcome.seconds, Self.timeLimit, "\(command): took \(outcome.seconds) s", file: file, line: test.line)
            if let peak = outcome.peakKB {
                XCTAssertLessThan(peak, Self.memoryLimitKB, "\(command): peak resident \(peak) KB", file: file, line: test.line)
                if peak > heaviest.0 { heaviest = (peak, command) }
            }
            if outcome.seconds > slowest.0 { slowest = (outcome.seconds, command) }
            let left = try FileManager.default.contentsOfDirectory(atPath: outputs.path)
            XCTAssertEqual(left, [], "\(command): left \(left) in the output folder", file: file, line: test.line)
            let now = Set(try FileManager.default.contentsOfDirectory(atPath: inputs.path))
            XCTAssertEqual(now, inputNames, "\(command): the input folder changed", file: file, line: test.line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "\(command): a pickle ran code", file: file, line: test.line)
            for name in left { try? FileManager.default.removeItem(at: outputs.appendingPathComponent(name)) }
        }
        print("HostileInputTests: \(table.count) cases against \(Self.binary); slowest \(String(format: "%.2f", slowest.0)) s (\(slowest.1)); "
              + (Self.gnuTime == nil ? "no /usr/bin/time, peak memory not measured" : "highest peak \(heaviest.0 / 1024) MB (\(heaviest.1))"))
    }

    /// The memory measurement itself: `elucidate models` must come out at tens of MB, not at
    /// this test process's size (which a child spawned straight from it would inherit).
    func testPeakMemoryIsTheChildsOwn() throws {
        guard Self.gnuTime != nil else { throw XCTSkip("no GNU time at /usr/bin/time") }
        let scratch = root.appendingPathComponent("scratch")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let outcome = try run(["models"], in: scratch)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let peak = try XCTUnwrap(outcome.peakKB)
        XCTAssertGreaterThan(peak, 1_000)
        XCTAssertLessThan(peak, 200_000, "elucidate models: \(peak) KB")
    }
}
