import Foundation
import XCTest
import Elucidate
import TestSupport

final class NPYTests: XCTestCase {
    // MARK: Helpers

    /// A .npy file with an arbitrary header text (version 1.0, padded like numpy) and payload.
    private func npy(header: String, payload: [UInt8] = [], version: UInt8 = 1) -> Data {
        var body = Array(header.utf8)
        let prefix = version == 1 ? 10 : 12
        body += [UInt8](repeating: 0x20, count: 63 - (prefix + body.count) % 64)
        body.append(0x0A)
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        if version == 1 {
            bytes += [UInt8(body.count & 0xFF), UInt8(body.count >> 8)]
        } else {
            bytes += [UInt8(body.count & 0xFF), UInt8((body.count >> 8) & 0xFF), UInt8(body.count >> 16), 0]
        }
        return Data(bytes + body + payload)
    }

    private func dict(_ descr: String, _ shape: String, fortran: Bool = false) -> String {
        "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    }

    private func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    private func assertRefused(
        _ data: Data, kind: ElucidateError.Kind, containing text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let array = try NPY.parse(data)
            XCTFail("parsed to shape \(array.shape)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertNil(error.path, file: file, line: line)
            XCTAssertTrue(error.message.contains(text), "message: \(error.message)", file: file, line: line)
        }
    }

    // MARK: Round trips

    func testFloat32RoundTrips() throws {
        var random = SeededGenerator(seed: 1)
        for shape in [[2, 3], [], [0], [5], [3, 0, 2], [1, 3, 4, 5], [7, 1, 1, 1, 2]] {
            let count = shape.reduce(1, *)
            let tensor = Tensor(shape: shape, values: random.floats(count, in: -1e6..<1e6))
            let data = NPY.encode(tensor)
            XCTAssertEqual(data.prefix(10 + Int(data[8]) + Int(data[9]) * 256).count % 64, 0, "header alignment")
            guard case .float32(let back) = try NPY.parse(data) else { return XCTFail("not float32") }
            XCTAssertEqual(back.shape, shape)
            XCTAssertEqual(back.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern))
        }
        // Special values survive bit for bit.
        let special = Tensor(shape: [4], values: [.nan, .infinity, -0.0, .leastNonzeroMagnitude])
        guard case .float32(let back) = try NPY.parse(NPY.encode(special)) else { return XCTFail() }
        XCTAssertEqual(back.scalars.map(\.bitPattern), special.scalars.map(\.bitPattern))
    }

    func testInt32RoundTrips() throws {
        for (shape, values) in [([2, 2], [Int32.min, -1, 0, .max]), ([], [42]), ([0, 4], []), ([3], [1, 2, 3])] {
            let data = NPY.encode(int32: values, shape: shape)
            guard case .int32(let s, let v) = try NPY.parse(data) else { return XCTFail("not int32") }
            XCTAssertEqual(s, shape)
            XCTAssertEqual(v, values)
        }
    }

    func testHeadersAreWrittenLikeNumpy() {
        // Exactly what numpy 2.4's np.save writes (header incl. preamble: 128 bytes).
        let cases: [([Int], String)] = [
            ([], "()"), ([0], "(0,)"), ([3], "(3,)"), ([2, 3], "(2, 3)"),
        ]
        for (shape, text) in cases {
            let data = NPY.encode(Tensor(zeros: shape))
            var expected: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, 0x76, 0]
            var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(text), }"
            header += String(repeating: " ", count: 127 - 10 - header.utf8.count) + "\n"
            expected += Array(header.utf8)
            XCTAssertEqual(Array(data.prefix(128)), expected, "shape \(shape)")
            XCTAssertEqual(data.count, 128 + shape.reduce(1, *) * 4)
        }
        let ints = NPY.encode(int32: [], shape: [3, 0, 2])
        XCTAssertEqual(String(decoding: ints[10..<128], as: UTF8.self),
                       "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 0, 2), }"
                       + String(repeating: " ", count: 55) + "\n")
    }

    func testNumpyWrittenFixturesReencodeByteForByte() throws {
        // Written by np.save in tools/make_image_fixtures.py.
        let tensorFile = fixtureURL("images/photo.torchvision.npy")
        let original = try Data(contentsOf: tensorFile)
        let tensor = try NPY.readFloat32(tensorFile)
        XCTAssertEqual(tensor.shape, [1, 3, 224, 224])
        XCTAssertEqual(NPY.encode(tensor), original)

        let intFile = fixtureURL("images/small.rgb.npy")
        let (shape, values) = try NPY.readInt32(intFile)
        XCTAssertEqual(shape, [61, 97, 3])
        XCTAssertEqual(NPY.encode(int32: values, shape: shape), try Data(contentsOf: intFile))
    }

    func testVersions2And3AndLiteralVariants() throws {
        let payload = floatBytes([1, 2, 3, 4, 5, 6])
        for version: UInt8 in [2, 3] {
            guard case .float32(let t) = try NPY.parse(npy(header: dict("<f4", "(2, 3)"), payload: payload, version: version))
            else { return XCTFail() }
            XCTAssertEqual(t.shape, [2, 3])
            XCTAssertEqual(t.scalars, [1, 2, 3, 4, 5, 6])
        }
        // Key order, double quotes, no trailing comma, Python 2 longs (version 1.0).
        let variant = "{\"shape\": (2L, 3L), 'fortran_order': False, \"descr\": \"<f4\"}"
        guard case .float32(let t) = try NPY.parse(npy(header: variant, payload: payload)) else { return XCTFail() }
        XCTAssertEqual(t.shape, [2, 3])
        // Fortran order is harmless when at most one dimension exceeds 1.
        guard case .float32(let f) = try NPY.parse(npy(header: dict("<f4", "(1, 6)", fortran: true), payload: payload))
        else { return XCTFail() }
        XCTAssertEqual(f.scalars, [1, 2, 3, 4, 5, 6])
        // A header that needs version 2.0 (more than 65535 bytes) is written and read back.
        let manyDims = [Int](repeating: 1, count: 25_000) + [2]
        let big = NPY.encode(Tensor(shape: manyDims, values: [7, 8]))
        XCTAssertEqual(big[6], 2)
        guard case .float32(let b) = try NPY.parse(big) else { return XCTFail() }
        XCTAssertEqual(b.shape, manyDims)
        XCTAssertEqual(b.scalars, [7, 8])
    }

    // MARK: Refusals

    func testRefusesOtherDtypesAndLayouts() {
        assertRefused(npy(header: dict("<f8", "(2,)"), payload: [UInt8](repeating: 0, count: 16)),
                      kind: .unsupported, containing: "float64")
        assertRefused(npy(header: dict(">f4", "(2,)"), payload: [UInt8](repeating: 0, count: 8)),
                      kind: .unsupported, containing: "big-endian")
        assertRefused(npy(header: dict(">i4", "(2,)"), payload: [UInt8](repeating: 0, count: 8)),
                      kind: .unsupported, containing: "big-endian")
        assertRefused(npy(header: dict("<f4", "(2, 3)", fortran: true), payload: floatBytes([1, 2, 3, 4, 5, 6])),
                      kind: .unsupported, containing: "Fortran")
        assertRefused(npy(header: dict("|O", "(2,)"), payload: [UInt8](repeating: 0, count: 16)),
                      kind: .unsupported, containing: "object arrays")
        assertRefused(npy(header: dict("|u1", "(2,)"), payload: [1, 2]), kind: .unsupported, containing: "uint8")
        assertRefused(npy(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", payload: floatBytes([1, 2])),
                      kind: .unsupported, containing: "structured")
        var version4 = npy(header: dict("<f4", "(1,)"), payload: floatBytes([1]))
        version4[6] = 4
        assertRefused(version4, kind: .unsupported, containing: "version 4.0")
    }

    func testRefusesTruncatedAndMalformedFiles() {
        let valid = NPY.encode(Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]))
        assertRefused(valid.prefix(valid.count - 1), kind: .invalidFormat, containing: "truncated")
        assertRefused(valid.prefix(100), kind: .invalidFormat, containing: "truncated")
        assertRefused(valid.prefix(7), kind: .invalidFormat, containing: "truncated")
        assertRefused(valid + Data([0]), kind: .invalidFormat, containing: "unexpected bytes")
        assertRefused(Data(), kind: .invalidFormat, containing: "empty")
        assertRefused(Data("PK\u{3}\u{4} a zip file".utf8), kind: .invalidFormat, containing: "bad magic")
        var badMagic = valid
        badMagic[1] = UInt8(ascii: "n")
        assertRefused(badMagic, kind: .invalidFormat, containing: "bad magic")

        for garbage in ["not a dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", "[1, 2]",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } trailing",
                        "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3.0), }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }",
                        "{'descr': '<f4', 'fortran_order': False, }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1, }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 3), }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (6,), }",
                        String(repeating: "(", count: 100) + String(repeating: ")", count: 100)] {
            assertRefused(npy(header: garbage, payload: floatBytes([1, 2, 3, 4, 5, 6])),
                          kind: .invalidFormat, containing: "header")
        }
        // Shape whose element count overflows Int, and one too large for the data.
        assertRefused(npy(header: dict("<f4", "(4611686018427387904, 4611686018427387904)")),
                      kind: .invalidFormat, containing: "too many elements")
        assertRefused(npy(header: dict("<f4", "(2305843009213693952,)")),
                      kind: .invalidFormat, containing: "truncated")
        // The header length field pointing past the end of the file.
        var longHeader = valid
        longHeader[9] = 0x7F
        assertRefused(longHeader, kind: .invalidFormat, containing: "truncated")
    }

    // MARK: Files

    func testFileErrorsNameThePath() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let missing = folder.appendingPathComponent("missing.npy")
        XCTAssertThrowsError(try NPY.read(missing)) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .fileNotFound)
            XCTAssertEqual((error as? ElucidateError)?.path, missing.path)
        }

        let ints = folder.appendingPathComponent("ints.npy")
        try NPY.write(int32: [1, 2, 3], shape: [3], to: ints)
        XCTAssertThrowsError(try NPY.readFloat32(ints)) { error in
            let e = error as? ElucidateError
            XCTAssertEqual(e?.kind, .unsupported)
            XCTAssertEqual(e?.path, ints.path)
            XCTAssertTrue(e?.message.contains("int32") ?? false, "\(error)")
        }

        let bad = folder.appendingPathComponent("bad.npy")
        try Data("garbage".utf8).write(to: bad)
        XCTAssertThrowsError(try NPY.read(bad)) { error in
            XCTAssertEqual((error as? ElucidateError)?.path, bad.path)
            XCTAssertTrue("\(error)".hasPrefix(bad.path + ": not a .npy file"), "\(error)")
        }
    }

    func testWriteIsAtomicAndRespectsProtectedInputs() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("t.npy")
        let tensor = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        try NPY.write(tensor, to: url)
        XCTAssertEqual(try NPY.readFloat32(url).scalars, [1, 2, 3, 4])
        XCTAssertEqual(try Data(contentsOf: url), NPY.encode(tensor))
        XCTAssertThrowsError(try NPY.write(tensor, to: url, protectedInputs: [url])) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .invalidArgument)
        }
        let nowhere = folder.appendingPathComponent("no/such/folder/t.npy")
        XCTAssertThrowsError(try NPY.write(tensor, to: nowhere)) { error in
            XCTAssertEqual((error as? ElucidateError)?.path, nowhere.path)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [])
    }

    // MARK: Property

    /// Random mutations of valid files never crash the parser: it either returns an array
    /// whose size matches its shape or throws an ElucidateError with a message.
    func testParseNeverCrashesOnMutations() {
        var random = SeededGenerator(seed: 2024)
        let seeds = [
            NPY.encode(Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])),
            NPY.encode(int32: [7, 8, 9], shape: [3]),
            NPY.encode(Tensor(shape: [], values: [1])),
            npy(header: dict("<f4", "(2,)"), payload: floatBytes([1, 2]), version: 3),
        ]
        var parsed = 0, refused = 0
        for iteration in 0..<3000 {
            var bytes = [UInt8](seeds[iteration % seeds.count])
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                switch Int.random(in: 0..<6, using: &random) {
                case 0:  // flip a bit
                    let i = Int.random(in: 0..<bytes.count, using: &random)
                    bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &random)
                case 1:  // random byte, biased toward the header
                    let i = Int.random(in: 0..<min(bytes.count, 80), using: &random)
                    bytes[i] = UInt8.random(in: 0...255, using: &random)
                case 2:  // a header-relevant character
                    let i = Int.random(in: 0..<min(bytes.count, 80), using: &random)
                    bytes[i] = Array("(){}[],:'\"0123456789-LTF ".utf8).randomElement(using: &random)!
                case 3:  // truncate
                    bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
                case 4:  // insert
                    let i = Int.random(in: 0...bytes.count, using: &random)
                    bytes.insert(contentsOf: (0..<Int.random(in: 1...5, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: i)
                default:  // delete
                    if !bytes.isEmpty { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &random)) }
                }
                if bytes.isEmpty { break }
            }
            do {
                let array = try NPY.parse(Data(bytes))
                switch array {
                case .float32(let t): XCTAssertEqual(t.count, t.shape.reduce(1, *))
                case .int32(let shape, let values): XCTAssertEqual(values.count, shape.reduce(1, *))
                }
                parsed += 1
            } catch {
                XCTAssertFalse(error.message.isEmpty)
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 1000)
        XCTAssertGreaterThan(parsed, 10)
    }
}
