import Foundation
import XCTest
import Elucidate
import TestSupport

final class SafetensorsTests: XCTestCase {
    // MARK: - Helpers

    /// A file: 8-byte little-endian header length, the header, then the byte buffer.
    private func file(_ header: String, _ buffer: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
        file(rawHeader: Array(header.utf8), buffer, declaredLength: declaredLength)
    }

    private func file(rawHeader: [UInt8], _ buffer: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
        var data = Data()
        withUnsafeBytes(of: (declaredLength ?? UInt64(rawHeader.count)).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: rawHeader)
        data.append(contentsOf: buffer)
        return data
    }

    private func bytes<T>(of values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    /// Asserts that parsing `data` fails with `kind` and a message containing `fragment`.
    private func assertRefused(_ data: Data, _ kind: ElucidateError.Kind, _ fragment: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try SafetensorsFile(bytes: data)
            XCTFail("accepted; expected \(kind): \(fragment)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'",
                          file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "multi-line error", file: file, line: line)
            XCTAssertNil(error.path, file: file, line: line)
        }
    }

    private func entry(_ name: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(end)]}"
    }

    // MARK: - Round trip and layout

    func testRoundTripThroughBytesAndFile() throws {
        var rng = SeededGenerator(seed: 7)
        let tensors: [String: Tensor] = [
            "conv1.weight": Tensor(shape: [4, 3, 3, 3], values: rng.floats(108, in: -5..<5)),
            "fc.bias": Tensor(shape: [10], values: rng.floats(10)),
            "scalar": Tensor(shape: [], values: [Float.pi]),
            "empty": Tensor(zeros: [0, 3]),
            "specials": Tensor(shape: [6], values: [.infinity, -.infinity, -0.0, .leastNonzeroMagnitude,
                                                    .greatestFiniteMagnitude, Float(bitPattern: 0x0001_1C58)]),
            "naïve \"quoted\"\n名前": Tensor(shape: [1, 1], values: [42]),
        ]
        let metadata = ["arch": "resnet34", "labels": "[\"a\",\"b\\\"c\"]", "tab\tkey": "new\nline", "ctl": "\u{01}"]
        let data = SafetensorsWriter.encode(tensors, metadata: metadata)

        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(headerLength % 8, 0, "header padded to a multiple of 8")

        let parsed = try SafetensorsFile(bytes: data)
        XCTAssertNil(parsed.path)
        XCTAssertEqual(parsed.names, tensors.keys.sorted())
        XCTAssertEqual(parsed.metadata, metadata)
        for (name, tensor) in tensors {
            let read = try parsed.tensor(name)
            XCTAssertEqual(read.shape, tensor.shape, name)
            XCTAssertEqual(read.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern), name)
            XCTAssertEqual(parsed.info(name)?.dtype, "F32")
            XCTAssertEqual(parsed.info(name)?.shape, tensor.shape)
        }
        XCTAssertEqual(try parsed.floatTensors().keys.sorted(), tensors.keys.sorted())
        XCTAssertNil(parsed.info("missing"))

        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("model.safetensors")
        try SafetensorsWriter.write(tensors, metadata: metadata, to: url)
        XCTAssertEqual(try Data(contentsOf: url), data)
        let mapped = try SafetensorsFile(url: url)
        XCTAssertEqual(mapped.path, url.path)
        XCTAssertEqual(mapped.metadata, metadata)
        for (name, tensor) in try mapped.floatTensors() {
            XCTAssertEqual(tensor.scalars.map(\.bitPattern), tensors[name]!.scalars.map(\.bitPattern), name)
        }
    }

    func testWriterHeaderIsCanonical() {
        let data = SafetensorsWriter.encode(["b": Tensor(shape: [1], values: [2]), "a": Tensor(shape: [2], values: [0, 1])],
                                            metadata: ["k": "v"])
        let header = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        var padded = Array(header.utf8)
        while padded.count % 8 != 0 { padded.append(UInt8(ascii: " ")) }
        XCTAssertEqual(Array(data), Array(file(rawHeader: padded, bytes(of: [Float(0), 1, 2]))))
        // No metadata: no __metadata__ member at all.
        let plain = SafetensorsWriter.encode([:])
        XCTAssertEqual(Array(plain), Array(file("{}      ")))
    }

    func testWriteRefusesMissingFolder() {
        let url = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/x.safetensors")
        XCTAssertThrowsError(try SafetensorsWriter.write([:], to: url))
    }

    // MARK: - Conversions

    /// Written by tools/make_safetensors_fixture.py with safetensors.torch.save_file.
    func testPythonWrittenFile() throws {
        let url = fixtureURL("safetensors/python_mixed.safetensors")
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.names, ["bf16", "f16", "f32", "f64", "num_batches_tracked"])
        XCTAssertEqual(file.metadata, ["arch": "tiny", "format": "pt"])
        XCTAssertEqual(file.info("num_batches_tracked")?.dtype, "I64")
        XCTAssertEqual(file.info("num_batches_tracked")?.shape, [])
        XCTAssertEqual(file.info("f16")?.dtype, "F16")
        XCTAssertEqual(file.info("bf16")?.shape, [2, 2])

        // float32 bit patterns printed by the script (torch's own .float() conversion).
        let expected: [String: ([Int], [UInt32])] = [
            // 0, -1.5, 3.25, 1e-30, -7e20, π
            "f32": ([2, 3], [0x0000_0000, 0xBFC0_0000, 0x4050_0000, 0x0DA2_4260, 0xE217_C9CE, 0x4049_0FDB]),
            // 1, -2.5, 65504, 2^-24 (smallest subnormal), f16(1/3), -0, +inf, 2^-14 (smallest normal)
            "f16": ([2, 4], [0x3F80_0000, 0xC020_0000, 0x477F_E000, 0x3380_0000,
                             0x3EAA_A000, 0x8000_0000, 0x7F80_0000, 0x3880_0000]),
            // 1, bf16(-π) = -3.140625, bf16 max, 2^-133 (float32 subnormal)
            "bf16": ([2, 2], [0x3F80_0000, 0xC049_0000, 0x7F7F_0000, 0x0001_0000]),
            // Float(0.1), -2.5, 1e-50 underflows to 0
            "f64": ([3], [0x3DCC_CCCD, 0xC020_0000, 0x0000_0000]),
        ]
        let all = try file.floatTensors()
        XCTAssertEqual(all.keys.sorted(), ["bf16", "f16", "f32", "f64"], "I64 skipped")
        for (name, (shape, bits)) in expected {
            let tensor = try file.tensor(name)
            XCTAssertEqual(tensor.shape, shape, name)
            XCTAssertEqual(tensor.scalars.map(\.bitPattern), bits, name)
            XCTAssertEqual(all[name]?.scalars.map(\.bitPattern), bits, name)
        }
        XCTAssertThrowsError(try file.tensor("num_batches_tracked")) { error in
            let error = error as! ElucidateError
            XCTAssertEqual(error.kind, .unsupported)
            XCTAssertTrue(error.description.hasPrefix(url.path + ": "), error.description)
            XCTAssertTrue(error.message.contains("'num_batches_tracked'"), error.message)
        }
        XCTAssertThrowsError(try file.tensor("nope")) { error in
            XCTAssertEqual((error as! ElucidateError).kind, .invalidArgument)
        }
    }

    /// Every one of the 65536 half-precision bit patterns converts exactly.
    func testEveryF16BitPatternConvertsExactly() throws {
        let patterns = (0...UInt16.max).map { $0 }
        let data = file("{" + entry("h", "F16", [65536], 0, 131_072) + "}", bytes(of: patterns.map(\.littleEndian)))
        let values = try SafetensorsFile(bytes: data).tensor("h").scalars
        for bits in patterns {
            let expected = Float(Float16(bitPattern: bits))
            let actual = values[Int(bits)]
            if expected.isNaN {
                XCTAssertTrue(actual.isNaN, "0x\(String(bits, radix: 16))")
            } else {
                XCTAssertEqual(actual.bitPattern, expected.bitPattern, "0x\(String(bits, radix: 16))")
            }
        }
    }

    /// Known values at unaligned offsets: a 3-byte U8 tensor pushes everything off alignment.
    func testBF16F64AndUnalignedF32() throws {
        let bf16: [UInt16] = [0x3F80, 0xC049, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x4049, 0x7FC0]
        let f64: [Double] = [0.1, -1e300, 1e-50, 3.4028235e38, 16_777_217, -0.0, 3.4028235677973366e38]
        let f32: [Float] = [1.5, -2.25, .pi]
        var buffer: [UInt8] = [1, 2, 3]  // U8 "pad", bytes 0..<3
        buffer += bytes(of: f32)          // 3..<15
        buffer += bytes(of: bf16)         // 15..<31
        buffer += bytes(of: f64)          // 31..<87
        let header = "{" + [entry("pad", "U8", [3], 0, 3), entry("f32", "F32", [3], 3, 15),
                            entry("bf16", "BF16", [2, 4], 15, 31), entry("f64", "F64", [7], 31, 87)]
            .joined(separator: ",") + "}"
        let file = try SafetensorsFile(bytes: file(header, buffer))
        XCTAssertEqual(try file.tensor("f32").scalars, f32)
        let b = try file.tensor("bf16")
        XCTAssertEqual(b.shape, [2, 4])
        XCTAssertEqual(Array(b.scalars.map(\.bitPattern).prefix(7)),
                       [0x3F80_0000, 0xC049_0000, 0x7F80_0000, 0xFF80_0000, 0x0001_0000, 0x8000_0000, 0x4049_0000])
        XCTAssertEqual(b.scalars[2], .infinity)
        XCTAssertEqual(b.scalars[6], 3.140625)
        XCTAssertTrue(b.scalars[7].isNaN)
        let d = try file.tensor("f64").scalars
        XCTAssertEqual(d[0], Float(0.1))
        XCTAssertEqual(d[1], -.infinity)
        XCTAssertEqual(d[2], 0)
        XCTAssertEqual(d[3], .greatestFiniteMagnitude)  // rounds down to FLT_MAX
        XCTAssertEqual(d[4], 16_777_216)                 // ties to even
        XCTAssertEqual(d[5].bitPattern, 0x8000_0000)
        XCTAssertEqual(d[6], .infinity)                  // halfway to 2^128: ties to even
        XCTAssertEqual(try file.floatTensors().keys.sorted(), ["bf16", "f32", "f64"])
        XCTAssertThrowsError(try file.tensor("pad"))
    }

    func testAcceptsEveryKnownDtypeAndEscapedNames() throws {
        let dtypes = [("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4), ("I16", 2),
                      ("I8", 1), ("U8", 1), ("BOOL", 1)]
        var entries: [String] = []
        var offset = 0
        for (dtype, size) in dtypes {
            entries.append(entry(dtype.lowercased(), dtype, [2], offset, offset + 2 * size))
            offset += 2 * size
        }
        entries.append(#""caf\u00e9 \ud83d\ude00 \"q\" \/":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}"#)
        entries.append(#""zero":{"dtype":"F32","shape":[4,0],"data_offsets":[3,3],"extra":true}"#)
        let file = try SafetensorsFile(bytes: file(" {" + entries.joined(separator: " ,\n") + "}\t \n ",
                                                   [UInt8](repeating: 0, count: offset)))
        XCTAssertEqual(file.names.count, 12)
        XCTAssertNotNil(file.info("café 😀 \"q\" /"))
        XCTAssertEqual(try file.floatTensors().keys.sorted(), ["bf16", "f16", "f32", "f64", "zero"])
        XCTAssertEqual(try file.tensor("zero").shape, [4, 0])
        XCTAssertTrue(file.metadata.isEmpty)
    }

    // MARK: - Refusals

    func testRefusesBadFraming() {
        assertRefused(Data(), .invalidFormat, "shorter than the 8-byte header length")
        assertRefused(Data([1, 2, 3, 4, 5, 6, 7]), .invalidFormat, "7 bytes")
        assertRefused(file("{}", declaredLength: 3), .invalidFormat, "runs past the end")
        assertRefused(file("{}", declaredLength: 1 << 40), .invalidFormat, "absurd")
        assertRefused(file("{}", declaredLength: .max), .invalidFormat, "absurd")
        assertRefused(file("{}", declaredLength: 100_000_001), .invalidFormat, "absurd")
    }

    func testRefusesBadJSON() {
        assertRefused(file(rawHeader: [UInt8(ascii: "{"), UInt8(ascii: "\""), 0xFF, UInt8(ascii: "\""), UInt8(ascii: "}")]),
                      .invalidFormat, "not valid UTF-8")
        assertRefused(file(rawHeader: [0xFE, 0xFF, 0, UInt8(ascii: "{"), 0, UInt8(ascii: "}")]),
                      .invalidFormat, "not valid UTF-8")
        for bad in ["", " ", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{} x", "{}{}", "{'a':1}", "{\"a\":01}",
                    "{\"a\":-}", "{\"a\":1.}", "{\"a\":1e}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":\"\u{01}\"}",
                    "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00x\"}",
                    "{\"a\":\"unterminated}", "{\"a\":[1 2]}", "\u{00A0}{}"] {
            assertRefused(file(bad), .invalidFormat, "header is not valid JSON")
        }
        for notObject in ["[]", "1", "\"x\"", "null", "true"] {
            assertRefused(file(notObject), .invalidFormat, "header is not a JSON object")
        }
    }

    func testRefusesDeepNestingWithoutCrashing() {
        let deep = 200_000
        assertRefused(file(String(repeating: "[", count: deep)), .invalidFormat, "nesting deeper than")
        assertRefused(file("{\"a\":" + String(repeating: "{\"b\":", count: deep) + "1" + String(repeating: "}", count: deep + 1)),
                      .invalidFormat, "nesting deeper than")
        assertRefused(file(String(repeating: "[", count: deep) + String(repeating: "]", count: deep)),
                      .invalidFormat, "nesting deeper than")
        // Modest nesting elsewhere is fine as long as the entries are valid.
        XCTAssertNoThrow(try SafetensorsFile(bytes: file(#"{"__metadata__":null}"#)))
    }

    func testRefusesBadEntries() {
        let four = [UInt8](repeating: 0, count: 16)
        let cases: [(String, ElucidateError.Kind, String)] = [
            (#"{"w":3}"#, .invalidFormat, "tensor 'w': entry is not a JSON object"),
            (#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, .invalidFormat, "tensor 'w' has no \"dtype\""),
            (#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, .invalidFormat, "tensor 'w' has no \"shape\""),
            (#"{"w":{"dtype":"F32","shape":[1]}}"#, .invalidFormat, "tensor 'w' has no \"data_offsets\""),
            (#"{"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, .invalidFormat, "tensor 'w': \"dtype\" is not a string"),
            (#"{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#, .unsupported, "unknown dtype 'F8_E4M3' for tensor 'w'"),
            (#"{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#, .unsupported, "unknown dtype 'f32' for tensor 'w'"),
            (#"{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}"#, .invalidFormat, "tensor 'w': \"shape\" is not an array"),
            (#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, .invalidFormat, "tensor 'w': shape entries must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, .invalidFormat, "shape entries must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}"#, .invalidFormat, "shape entries must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, .invalidFormat, "shape entries must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[99999999999999999999999],"data_offsets":[0,4]}}"#, .invalidFormat, "shape entries must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, .invalidFormat, "tensor 'w': \"data_offsets\" is not [begin, end]"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, .invalidFormat, "\"data_offsets\" is not [begin, end]"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":{"a":0}}}"#, .invalidFormat, "\"data_offsets\" is not [begin, end]"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, .invalidFormat, "tensor 'w': data_offsets must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}"#, .invalidFormat, "data_offsets must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, .invalidFormat, "tensor 'w': data_offsets begin 8 > end 4"),
            (#"{"w":{"dtype":"F32","shape":[5],"data_offsets":[0,20]}}"#, .invalidFormat, "tensor 'w' ends past the end of the file"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}"#, .invalidFormat, "data_offsets must be non-negative integers"),
            (#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, .invalidFormat, "tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets span 8"),
            (#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, .invalidFormat, "tensor 'w': shape [4294967296, 4294967296] overflows"),
            (#"{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#, .invalidFormat, "overflows"),
            (#"{"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}"#, .invalidFormat, "overflows"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
             .invalidFormat, "tensors 'a' and 'b' overlap"),
            (#"{"b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"U8","shape":[1],"data_offsets":[15,16]}}"#,
             .invalidFormat, "tensors 'b' and 'a' overlap"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
             .invalidFormat, "header names 'a' twice"),
            (#"{"__metadata__":[]}"#, .invalidFormat, "__metadata__ is not an object of strings"),
            (#"{"__metadata__":{"k":1}}"#, .invalidFormat, "__metadata__ value for 'k' is not a string"),
            (#"{"__metadata__":{"k":"a","k":"b"}}"#, .invalidFormat, "__metadata__ names 'k' twice"),
        ]
        for (header, kind, fragment) in cases {
            assertRefused(file(header, four), kind, fragment)
        }
        // Adjacent and empty tensors do not overlap.
        XCTAssertNoThrow(try SafetensorsFile(bytes: file(
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
            four)))
    }

    func testFileErrorsNameThePath() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }

        let missing = folder.appendingPathComponent("missing.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(url: missing)) { error in
            XCTAssertEqual((error as! ElucidateError).kind, .fileNotFound)
            XCTAssertEqual((error as! ElucidateError).path, missing.path)
        }
        XCTAssertThrowsError(try SafetensorsFile(url: folder)) { error in
            XCTAssertEqual((error as! ElucidateError).kind, .unreadable)
        }
        let empty = folder.appendingPathComponent("empty.safetensors")
        try Data().write(to: empty)
        XCTAssertThrowsError(try SafetensorsFile(url: empty)) { error in
            XCTAssertEqual((error as! ElucidateError).kind, .invalidFormat)
            XCTAssertEqual((error as! ElucidateError).path, empty.path)
        }
        let truncated = folder.appendingPathComponent("truncated.safetensors")
        let whole = SafetensorsWriter.encode(["fc.weight": Tensor(shape: [2, 2], values: [1, 2, 3, 4])])
        try whole.dropLast(4).write(to: truncated)
        XCTAssertThrowsError(try SafetensorsFile(url: truncated)) { error in
            let error = error as! ElucidateError
            XCTAssertEqual(error.description.components(separatedBy: ": ").first, truncated.path)
            XCTAssertTrue(error.message.contains("tensor 'fc.weight' ends past the end of the file"), error.message)
        }
    }

    // MARK: - Robustness

    /// Random mutations and truncations of valid files are refused cleanly or read, never crash.
    func testRandomMutationsNeverCrash() throws {
        let pythonFile = try Data(contentsOf: fixtureURL("safetensors/python_mixed.safetensors"))
        var rng = SeededGenerator(seed: 0x5AFE_7E25)
        let written = SafetensorsWriter.encode([
            "a.weight": Tensor(shape: [3, 2], values: rng.floats(6)),
            "a.bias": Tensor(shape: [3], values: rng.floats(3)),
            "s": Tensor(shape: [], values: [1]),
        ], metadata: ["arch": "x", "labels": "[\"1\",\"2\",\"3\"]"])
        let mixed = file("{" + [entry("p", "U8", [3], 0, 3), entry("h", "F16", [2], 3, 7),
                                entry("b", "BF16", [1, 2], 7, 11), entry("d", "F64", [1], 11, 19)]
            .joined(separator: ",") + "}", (0..<19).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        let bases = [Array(pythonFile), Array(written), Array(mixed)]
        let alphabet = Array("{}[]\":,0123456789-+.eE \\uFFtrue".utf8)

        var accepted = 0, refused = 0
        for _ in 0..<4000 {
            var bytes = bases[Int.random(in: 0..<bases.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                guard !bytes.isEmpty else { break }
                // Mostly mutate the header, where the interesting structure is.
                let headerEnd = min(bytes.count, 8 + Int(bytes.count > 8 ? min(UInt64(bytes[0]) | UInt64(bytes[1]) << 8, 4096) : 0))
                let index = Int.random(in: 0..<(Bool.random(using: &rng) ? max(headerEnd, 1) : bytes.count), using: &rng)
                    % bytes.count
                switch Int.random(in: 0..<8, using: &rng) {
                case 0: bytes[index] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                case 1: bytes[index] = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
                case 2: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 3: bytes.removeSubrange(Int.random(in: 0...bytes.count, using: &rng)...)
                case 4: bytes.removeSubrange(index..<min(bytes.count, index + Int.random(in: 1...8, using: &rng)))
                case 5: bytes.insert(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)], at: index)
                case 6:
                    // Rewrite the header length: near the truth or anything at all.
                    guard bytes.count >= 8 else { break }
                    let current = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                    let value = Bool.random(using: &rng) ? current &+ UInt64(bitPattern: Int64.random(in: -9...9, using: &rng))
                                                         : rng.next()
                    for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
                default:
                    // Replace a digit run's digit: shifts offsets and shapes.
                    if let digit = bytes.indices.dropFirst(index).first(where: { (48...57).contains(bytes[$0]) }) {
                        bytes[digit] = UInt8.random(in: 48...57, using: &rng)
                    }
                }
            }
            do {
                let parsed = try SafetensorsFile(bytes: Data(bytes))
                accepted += 1
                for name in parsed.names {
                    guard let info = parsed.info(name) else { return XCTFail("listed name without info") }
                    if let tensor = try? parsed.tensor(name) {
                        XCTAssertEqual(tensor.shape, info.shape)
                        _ = tensor.scalars.reduce(0, +)
                    }
                }
                _ = try? parsed.floatTensors()
            } catch {
                refused += 1
                XCTAssertFalse(error.description.isEmpty)
                XCTAssertFalse(error.description.contains("\n"), error.description)
            }
        }
        XCTAssertGreaterThan(accepted, 50, "mutations should sometimes keep a file valid")
        XCTAssertGreaterThan(refused, 1000)
    }
}
