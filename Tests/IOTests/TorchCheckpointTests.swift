import Foundation
import XCTest
import Elucidate
@testable import ElucidateIO
import TestSupport

/// `TorchCheckpoint` on files torch.save wrote (Tests/Fixtures/pth, made by
/// tools/make_pth_fixtures.py) and on archives built here to be wrong in one way each.
final class TorchCheckpointTests: XCTestCase {
    private func fixture(_ name: String) -> URL { fixtureURL("pth/\(name)") }

    /// Asserts that parsing `data` fails with `kind` and a message containing each fragment.
    private func assertRefused(_ data: Data, _ kind: ElucidateError.Kind, _ fragments: String...,
                               file: StaticString = #filePath, line: UInt = #line) {
        do {
            let result = try TorchCheckpoint.parse(data)
            XCTFail("accepted (\(result.keys.count) tensors); expected \(kind): \(fragments)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
            }
            XCTAssertFalse(error.description.contains("\n"), "multi-line error", file: file, line: line)
            XCTAssertNil(error.path, file: file, line: line)
        }
    }

    private func assertRefusedFile(_ name: String, _ kind: ElucidateError.Kind, _ fragments: String...,
                                   file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try TorchCheckpoint.load(fixture(name))
            XCTFail("accepted \(name)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertEqual(error.path, fixture(name).path, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
            }
            XCTAssertFalse(error.description.contains("\n"), "multi-line error", file: file, line: line)
        }
    }

    private func assertBitwiseEqual(_ actual: Tensor?, _ expected: Tensor, _ name: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else { return XCTFail("missing '\(name)'", file: file, line: line) }
        XCTAssertEqual(actual.shape, expected.shape, name, file: file, line: line)
        XCTAssertEqual(actual.scalars.map(\.bitPattern), expected.scalars.map(\.bitPattern), name, file: file, line: line)
    }

    /// A torch.save-shaped archive with the given data.pkl and storages.
    private func archive(_ pickle: [UInt8], storages: [String: Data] = [:], byteorder: String? = "little",
                         extra: [(String, Data)] = []) -> Data {
        var files: [(name: String, contents: Data)] = [("archive/data.pkl", Data(pickle))]
        if let byteorder { files.append(("archive/byteorder", Data(byteorder.utf8))) }
        for key in storages.keys.sorted() { files.append(("archive/data/\(key)", storages[key]!)) }
        for (name, contents) in extra { files.append((name, contents)) }
        return ZipArchive.storedArchive(files)
    }

    private func floats(_ values: [Float]) -> Data {
        values.withUnsafeBytes { Data($0) }
    }

    // MARK: - Parity with safetensors and torch's layouts

    /// The same state dict written by torch.save and by safetensors reads back identical:
    /// float32 copied, float16/bfloat16 exact, float64 rounded once, transposed and shared
    /// views gathered, integer tensors dropped.
    func testTinyCheckpointMatchesSafetensorsBitForBit() throws {
        let pth = try TorchCheckpoint.load(fixture("tiny.pth"))
        let reference = try SafetensorsFile(url: fixture("tiny.safetensors")).floatTensors()
        XCTAssertEqual(pth.keys, reference.keys.sorted())
        for (name, tensor) in reference { assertBitwiseEqual(pth[name], tensor, name) }
        XCTAssertFalse(pth.contains("bn1.num_batches_tracked"))
        XCTAssertFalse(pth.contains("extra.int32"))
        XCTAssertEqual(pth["fc.weight"]?.shape, [5, 4])
        XCTAssertEqual(pth["extra.scalar"]?.shape, [])
        XCTAssertEqual(pth["extra.scalar"]?.scalars, [3.25])
        XCTAssertEqual(pth["extra.empty"]?.shape, [0, 3])
        XCTAssertEqual(pth["shared.every_other"]?.shape, [12])
        let half = try XCTUnwrap(pth["layer1.0.conv1.weight"]).scalars
        XCTAssertEqual(Array(half.prefix(4)).map(\.bitPattern),
                       [Float(0x1p-24), -0.0, 65504, .infinity].map(\.bitPattern))
        XCTAssertEqual(pth["extra.double"]?.scalars.last, .infinity)
    }

    func testTransposedAndSharedViewsAreGatheredInCOrder() throws {
        let pth = try TorchCheckpoint.load(fixture("tiny.pth"))
        let matrix = try XCTUnwrap(pth["shared.matrix"]).scalars
        let bias = try XCTUnwrap(pth["fc.bias"]).scalars
        let everyOther = try XCTUnwrap(pth["shared.every_other"]).scalars
        // One storage of 24 values: matrix = [0, 10), bias = [10, 15), every_other = 1, 3, ..., 23.
        XCTAssertEqual(everyOther[0], matrix[1])
        XCTAssertEqual(everyOther[4], matrix[9])
        XCTAssertEqual(everyOther[5], bias[1])
        let weight = try XCTUnwrap(pth["fc.weight"])
        XCTAssertEqual(weight[1, 0], weight.scalars[4])
        XCTAssertEqual(weight[0, 1], try XCTUnwrap(pth["fc.weight"])[0, 1])
    }

    func testWrappedCheckpointsAndDataParallelPrefix() throws {
        let bare = try TorchCheckpoint.load(fixture("tiny.pth"))
        for name in ["under_model.pth", "under_state_dict.pth", "dataparallel.pth"] {
            let loaded = try TorchCheckpoint.load(fixture(name))
            XCTAssertEqual(loaded.keys, bare.keys, name)
            for key in bare.keys { assertBitwiseEqual(loaded[key], bare[key]!, "\(name): \(key)") }
        }
    }

    func testWriterOutputReadsBack() throws {
        var rng = SeededGenerator(seed: 3)
        let tensors: [String: Tensor] = [
            "conv.weight": Tensor(shape: [3, 2, 3, 3], values: rng.floats(54)),
            "scalar": Tensor(shape: [], values: [-1.5]),
            "empty": Tensor(zeros: [2, 0]),
            "naïve key": Tensor(shape: [300], values: rng.floats(300)),
        ]
        let data = TorchCheckpoint.encode(tensors)
        XCTAssertTrue(TorchCheckpoint.looksLikeCheckpoint(data))
        let loaded = try TorchCheckpoint.parse(data)
        XCTAssertEqual(loaded.keys, tensors.keys.sorted())
        for (name, tensor) in tensors { assertBitwiseEqual(loaded[name], tensor, name) }
    }

    /// torch.load(weights_only=True) reads what `encode` writes (skipped without torch).
    func testTorchLoadsWriterOutput() throws {
        let folder = try makeTemporaryDirectory("elucidate-pth")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("w.pth")
        try TorchCheckpoint.encode(["a.weight": Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, -0.5]),
                                    "b": Tensor(shape: [], values: [7])]).write(to: path)
        let script = """
            import sys, torch
            sd = torch.load(sys.argv[1], weights_only=True)
            print(list(sd.keys()), sd['a.weight'].tolist(), sd['b'].item(), sd['a.weight'].dtype)
            """
        let result = try python(["-c", script, path.path])
        XCTAssertEqual(result.trimmingCharacters(in: .whitespacesAndNewlines),
                       "['a.weight', 'b'] [[1.0, 2.0, 3.0], [4.0, 5.0, -0.5]] 7.0 torch.float32")
    }

    /// Output of `python3 arguments`, or XCTSkip when python3 or torch is missing.
    private func python(_ arguments: [String]) throws -> String {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import torch"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("python3 with torch is not available") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: - Whole pickled objects and executable globals

    func testPickledModuleIsRefusedWithAdvice() {
        assertRefusedFile("pickled_module.pth", .unsupported,
                          "refuses to load 'torch.nn.modules.container.Sequential': only state dicts (tensors in dicts) are supported",
                          "this looks like a whole pickled model (learn.export() or torch.save(model))",
                          "torch.save(learn.model.state_dict(), 'weights.pth') or learn.save('weights')")
    }

    func testLearnerExportIsRefusedWithAdvice() {
        assertRefusedFile("learner_export.pkl", .unsupported,
                          "refuses to load 'fastai.learner.Learner': only state dicts (tensors in dicts) are supported; this looks like a whole pickled model",
                          "learn.save('weights')")
    }

    func testOSSystemIsRefusedWithoutAdvice() throws {
        assertRefusedFile("os_system.pth", .unsupported,
                          "refuses to load 'os.system': only state dicts (tensors in dicts) are supported")
        do {
            _ = try TorchCheckpoint.load(fixture("os_system.pth"))
        } catch {
            XCTAssertFalse(error.message.contains("pickled model"), error.message)
        }
    }

    func testLegacyTorchScriptAndOtherFormatsAreRefused() {
        assertRefusedFile("legacy.pth", .unsupported, "legacy PyTorch checkpoint",
                          "re-save it with a current PyTorch: torch.save(torch.load('old.pth', weights_only=True), 'new.pth')")
        assertRefusedFile("torchscript.pt", .unsupported, "TorchScript archive (torch.jit.save)")
        assertRefusedFile("tiny.safetensors", .invalidFormat, "not a PyTorch checkpoint")
        assertRefusedFile("pickles/basic_p2.pkl", .unsupported, "plain Python pickle")
        assertRefused(Data(), .invalidFormat, "empty")
        assertRefused(Data("hello".utf8), .invalidFormat, "starts with 68 65 6c 6c")
        XCTAssertTrue(TorchCheckpoint.looksLikeCheckpoint(at: fixture("legacy.pth")))
        XCTAssertTrue(TorchCheckpoint.looksLikeCheckpoint(at: fixture("tiny.pth")))
        XCTAssertFalse(TorchCheckpoint.looksLikeCheckpoint(at: fixture("tiny.safetensors")))
        XCTAssertFalse(TorchCheckpoint.looksLikeCheckpoint(at: fixture("none.pth")))
    }

    func testBigEndianIsRefused() {
        let pickle = Array(TorchCheckpointTests.minimalPickle(offset: 0, size: [2], stride: [1], numel: 2))
        assertRefused(archive(pickle, storages: ["0": floats([1, 2])], byteorder: "big"), .unsupported, "big-endian")
        assertRefused(archive(pickle, storages: ["0": floats([1, 2])], byteorder: "middle"), .invalidFormat, "byteorder")
        XCTAssertEqual(try TorchCheckpoint.parse(archive(pickle, storages: ["0": floats([1, 2])], byteorder: nil))["w"]?.scalars, [1, 2])
    }

    // MARK: - Hand-made archives, one fault each

    /// data.pkl of {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset, size, stride, False, OrderedDict())}.
    static func minimalPickle(offset: Int, size: [Int], stride: [Int], numel: Int, storage: String = "FloatStorage",
                              key: String = "0") -> [UInt8] {
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28]  // PROTO 2, EMPTY_DICT, MARK
        func string(_ s: String) { p += [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }
        func int(_ v: Int) { p += [0x8A, 8] + withUnsafeBytes(of: Int64(v).littleEndian, Array.init) }
        string("w")
        p += Array("ctorch._utils\n_rebuild_tensor_v2\n".utf8) + [0x28, 0x28]
        string("storage")
        p += Array("ctorch\n\(storage)\n".utf8)
        string(key)
        string("cpu")
        int(numel)
        p += [0x74, 0x51]  // TUPLE, BINPERSID
        int(offset)
        p += [0x28]; size.forEach(int); p += [0x74]
        p += [0x28]; stride.forEach(int); p += [0x74]
        p += [0x89] + Array("ccollections\nOrderedDict\n".utf8) + [0x29, 0x52, 0x74, 0x52, 0x75, 0x2E]
        return p
    }

    func testOffsetSizeAndStrideAreCheckedAgainstTheStorage() throws {
        let six = floats([0, 1, 2, 3, 4, 5])
        func parse(_ offset: Int, _ size: [Int], _ stride: [Int], numel: Int = 6) throws -> StateDict {
            try TorchCheckpoint.parse(archive(Self.minimalPickle(offset: offset, size: size, stride: stride, numel: numel),
                                              storages: ["0": six]))
        }
        XCTAssertEqual(try parse(1, [2, 2], [1, 2])["w"]?.scalars, [1, 3, 2, 4])  // transposed view
        XCTAssertEqual(try parse(5, [], [])["w"]?.scalars, [5])
        XCTAssertEqual(try parse(6, [0], [1])["w"]?.shape, [0])
        XCTAssertEqual(try parse(0, [3, 1], [2, 1_000_000_000_000])["w"]?.scalars, [0, 2, 4])  // stride of a size-1 axis is free
        XCTAssertEqual(try parse(2, [4], [0])["w"]?.scalars, [2, 2, 2, 2])  // expanded
        for (offset, size, stride) in [(1, [6], [1]), (0, [2, 3], [3, 2]), (6, [], []), (7, [0], [1]),
                                       (0, [2], [Int.max]), (Int.max, [2], [1]), (0, [Int.max, Int.max], [1, 1])] {
            XCTAssertThrowsError(try parse(offset, size, stride), "\(offset) \(size) \(stride)") { error in
                XCTAssertEqual((error as? ElucidateError)?.kind, .invalidFormat, "\(error)")
            }
        }
        assertRefused(archive(Self.minimalPickle(offset: 0, size: [7], stride: [1], numel: 7), storages: ["0": six]),
                      .invalidFormat, "storage '0' of 7 FloatStorage elements needs 28 bytes but its record has 24")
        assertRefused(archive(Self.minimalPickle(offset: 0, size: [1], stride: [1], numel: Int.max / 2), storages: ["0": six]),
                      .invalidFormat, "needs more bytes")
        assertRefused(archive(Self.minimalPickle(offset: 0, size: [1], stride: [1], numel: 1, key: "1"), storages: ["0": six]),
                      .invalidFormat, "storage '1' has no record 'archive/data/1'")
        assertRefused(archive(Self.minimalPickle(offset: 0, size: [1], stride: [1], numel: 1, key: "../0"), storages: ["0": six]),
                      .invalidFormat, "storage key is not a simple name")
        assertRefused(archive(Self.minimalPickle(offset: 0, size: [1], stride: [1], numel: 1, storage: "ComplexFloatStorage"),
                              storages: ["0": six]),
                      .unsupported, "refuses to load 'torch.ComplexFloatStorage'")
    }

    func testExpansionIsBounded() {
        // One float repeated 2^26 times: a few bytes may not become 256 MB.
        assertRefused(archive(Self.minimalPickle(offset: 0, size: [1 << 26], stride: [0], numel: 1), storages: ["0": floats([1])]),
                      .invalidFormat, "refusing views that repeat their storage")
    }

    func testIntegerAndConvertedDtypes() throws {
        let halves: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7C00]
        let half = try TorchCheckpoint.parse(archive(Self.minimalPickle(offset: 1, size: [3], stride: [1], numel: 4, storage: "HalfStorage"),
                                                     storages: ["0": halves.withUnsafeBytes { Data($0) }]))
        XCTAssertEqual(half["w"]?.scalars, [-2, 0x1p-24, .infinity])
        let brains: [UInt16] = [0x3F80, 0x4049]
        let bf16 = try TorchCheckpoint.parse(archive(Self.minimalPickle(offset: 0, size: [2], stride: [1], numel: 2, storage: "BFloat16Storage"),
                                                     storages: ["0": brains.withUnsafeBytes { Data($0) }]))
        XCTAssertEqual(bf16["w"]?.scalars, [1, Float(bitPattern: 0x4049_0000)])
        let doubles: [Double] = [0.1, -1e300]
        let f64 = try TorchCheckpoint.parse(archive(Self.minimalPickle(offset: 0, size: [2], stride: [1], numel: 2, storage: "DoubleStorage"),
                                                    storages: ["0": doubles.withUnsafeBytes { Data($0) }]))
        XCTAssertEqual(f64["w"]?.scalars, [Float(0.1), -.infinity])
        // An integer tensor alone: read and dropped, leaving an empty state dict.
        let longs: [Int64] = [7]
        let integer = try TorchCheckpoint.parse(archive(Self.minimalPickle(offset: 0, size: [], stride: [], numel: 1, storage: "LongStorage"),
                                                        storages: ["0": longs.withUnsafeBytes { Data($0) }]))
        XCTAssertEqual(integer.keys, [])
    }

    func testCorruptStorageFailsItsCRC() throws {
        var data = try Data(contentsOf: fixture("tiny.pth"))
        let zip = try ZipArchive(bytes: data)
        let entry = try XCTUnwrap(zip.entry("tiny/data/0"))
        data[entry.dataOffset + 1] ^= 0x40
        assertRefused(data, .invalidFormat, "entry 'tiny/data/0' is corrupt: CRC-32")
    }

    func testEveryTruncationIsRefused() throws {
        let data = try Data(contentsOf: fixture("under_model.pth"))
        for length in stride(from: 0, to: data.count, by: 7) {
            XCTAssertThrowsError(try TorchCheckpoint.parse(data.prefix(length)), "\(length) bytes")
        }
    }

    func testArchivesThatAreNotStateDicts() {
        func pickle(_ body: [UInt8]) -> [UInt8] { [0x80, 0x02] + body + [0x2E] }
        assertRefused(archive([0xFF]), .invalidFormat, "data.pkl: unknown pickle opcode 0xff")  // garbage
        assertRefused(archive(pickle([0x5D])), .invalidFormat, "holds a list, not a state dict")
        assertRefused(archive(pickle([0x4E])), .invalidFormat, "holds None, not a state dict")
        assertRefused(archive(pickle([0x7D])), .invalidFormat, "the top-level dict is empty: no tensors")
        assertRefused(archive(pickle([0x7D, 0x58, 1, 0, 0, 0, 0x65, 0x4B, 3, 0x73])), .invalidFormat,
                      "the top-level dict is not a state dict: 'e' is a int, not a tensor (keys: 'e')",
                      "under 'model' or 'state_dict'")
        // {'model': {'epoch': 1}}
        assertRefused(archive(pickle([0x7D, 0x8C, 5] + Array("model".utf8) + [0x7D, 0x8C, 5] + Array("epoch".utf8) + [0x4B, 1, 0x73, 0x73])),
                      .invalidFormat, "['model'] is not a state dict: 'epoch' is a int")
        // Two data.pkl, none, or a TorchScript folder.
        assertRefused(ZipArchive.storedArchive([("a/data.pkl", Data(pickle([0x7D]))), ("b/data.pkl", Data(pickle([0x7D])))]),
                      .invalidFormat, "2 data.pkl entries")
        assertRefused(ZipArchive.storedArchive([("data.pkl", Data(pickle([0x7D])))]), .invalidFormat, "without a '<name>/data.pkl' entry")
        assertRefused(archive(pickle([0x7D]), extra: [("archive/constants.pkl", Data())]), .unsupported, "TorchScript")
    }

    func testNamespaceAndNumpyBesideTheWeightsAreDropped() throws {
        // {'args': argparse.Namespace(lr=numpy float64), 'state_dict': <minimal>}
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28, 0x8C, 4] + Array("args".utf8)
        p += Array("cargparse\nNamespace\n".utf8) + [0x29, 0x81, 0x7D, 0x8C, 2] + Array("lr".utf8)
        p += Array("cnumpy.core.multiarray\nscalar\n".utf8) + Array("cnumpy\ndtype\n".utf8)
        p += [0x8C, 2] + Array("f8".utf8) + [0x89, 0x88, 0x87, 0x52, 0x4E, 0x85, 0x62]  // dtype('f8', False, True); BUILD (None,)
        p += [0x43, 8] + [UInt8](repeating: 0, count: 8) + [0x86, 0x52, 0x73, 0x62]  // scalar(dtype, bytes); SETITEM; BUILD
        p += [0x8C, 10] + Array("state_dict".utf8)
        let inner = Self.minimalPickle(offset: 0, size: [1], stride: [1], numel: 1)
        p += inner[2..<(inner.count - 1)]  // the dict without PROTO and STOP
        p += [0x75, 0x2E]
        let loaded = try TorchCheckpoint.parse(archive(p, storages: ["0": floats([4])]))
        XCTAssertEqual(loaded["w"]?.scalars, [4])
    }
}
