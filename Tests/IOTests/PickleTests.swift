import Foundation
import XCTest
import Elucidate
@testable import ElucidateIO
import TestSupport

/// The restricted unpickler: what Python writes with protocols 0 to 5, what it refuses
/// (any global outside the allow-list, before anything after it is read), and hostile
/// input (it throws; it never crashes, hangs or runs out of memory).
final class PickleTests: XCTestCase {
    /// A Python-like rendering of `value` (dicts in insertion order).
    private func render(_ value: PickleValue, _ document: PickleDocument, depth: Int = 0) -> String {
        guard depth < 20 else { return "…" }
        switch value {
        case .none: return "None"
        case .bool(let flag): return flag ? "True" : "False"
        case .int(let number): return String(number)
        case .float(let number): return String(number)
        case .string(let text): return "'\(text)'"
        case .bytes(let bytes): return "b'" + bytes.map { String(format: "%02x", $0) }.joined() + "'"
        case .tuple(let tuple): return "(" + tuple.items.map { render($0, document, depth: depth + 1) }.joined(separator: ", ") + ")"
        case .list(let id): return "[" + document.lists[id].map { render($0, document, depth: depth + 1) }.joined(separator: ", ") + "]"
        case .dict(let id):
            let dict = document.dicts[id]
            return "{" + zip(dict.keys, dict.values).map {
                "\(render($0, document, depth: depth + 1)): \(render($1, document, depth: depth + 1))"
            }.joined(separator: ", ") + "}"
        case .global(let global): return "<\(global.name)>"
        case .storage(let storage): return "<storage \(storage.key)>"
        case .tensor(let tensor): return "<tensor \(tensor.shape)>"
        case .object(let name): return "<\(name)>"
        }
    }

    private func load(_ bytes: [UInt8]) throws(ElucidateError) -> PickleDocument {
        try Unpickler.load(Data(bytes))
    }

    private func assertRefused(_ bytes: [UInt8], _ kind: ElucidateError.Kind, _ fragment: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        do {
            let document = try load(bytes)
            XCTFail("accepted: \(render(document.root, document)); expected \(fragment)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "multi-line error", file: file, line: line)
        }
    }

    private func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: - What Python writes

    func testEveryProtocolOfPythonsPickle() throws {
        let expected = "{'int': 1, 'neg': -300, 'big': 1099511627776, 'negbig': -4611686018427387904, 'float': 0.5, "
            + "'str': 'naïve ✓\n', 'none': None, 't': True, 'f': False, 'tuple': (1, 'a', (2.5, ())), "
            + "'list': [1, [2, [3]]], 'bytes': b'00ff', 'od': {'b': 2, 'a': 1}, 's1': [1, 2], 's2': [1, 2], 7: 'int key'}"
        for version in 0...5 {
            let data = try Data(contentsOf: fixtureURL("pth/pickles/basic_p\(version).pkl"))
            let document = try Unpickler.load(data)
            XCTAssertEqual(render(document.root, document), expected, "protocol \(version)")
            // The memo shares one list between 's1' and 's2', as Python does.
            guard case .dict(let id) = document.root, case .list(let first)? = document.dicts[id]["s1"],
                  case .list(let second)? = document.dicts[id]["s2"] else {
                return XCTFail("protocol \(version): no shared lists")
            }
            XCTAssertEqual(first, second, "protocol \(version)")
        }
    }

    func testMemoSharesContainersMutatedLater() throws {
        // l = []; d = {'a': l}; l.append(1) — the dict sees the appended element.
        let document = try load([0x80, 0x02, 0x5D, 0x71, 0x00, 0x7D, 0x8C, 0x01, 0x61, 0x68, 0x00, 0x73, 0x94, 0x30,
                                 0x68, 0x00, 0x4B, 0x01, 0x61, 0x30, 0x68, 0x01, 0x2E])
        XCTAssertEqual(render(document.root, document), "{'a': [1]}")
    }

    func testScalarsAtTheirLimits() throws {
        // LONG1 of 9 bytes that only sign-extends; BININT of -1; BINUNICODE8; BINBYTES; in a frame.
        let body: [UInt8] = [0x28, 0x8A, 0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00,
                             0x8A, 0x00, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF,
                             0x8D, 3, 0, 0, 0, 0, 0, 0, 0] + utf8("hé")
            + [0x42, 1, 0, 0, 0, 0x7F, 0x47, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0, 0x74, 0x2E]
        let document = try load([0x80, 0x04, 0x95] + withUnsafeBytes(of: UInt64(body.count).littleEndian, Array.init) + body)
        XCTAssertEqual(render(document.root, document), "(9223372036854775807, 0, -1, 'hé', b'7f', inf)")
    }

    // MARK: - Refusals

    func testGlobalsOutsideTheAllowListAreRefusedOnTheSpot() {
        // Garbage follows the GLOBAL: the refusal comes first, nothing after it is read.
        assertRefused([0x80, 0x02] + utf8("cos\nsystem\n") + [0xFF, 0xFF], .unsupported,
                      "refuses to load 'os.system': only state dicts (tensors in dicts) are supported")
        assertRefused([0x80, 0x04, 0x8C, 0x08] + utf8("builtins") + [0x8C, 0x04] + utf8("eval") + [0x93, 0xFF], .unsupported,
                      "refuses to load 'builtins.eval'")
        assertRefused(utf8("c__builtin__\ngetattr\n"), .unsupported, "refuses to load '__builtin__.getattr'")
        assertRefused(utf8("ctorch\nload\n"), .unsupported, "refuses to load 'torch.load'")
        assertRefused(utf8("ctorch._utils\n_rebuild_qtensor\n"), .unsupported, "refuses to load 'torch._utils._rebuild_qtensor'")
        assertRefused(utf8("cbuiltins\nset\n"), .unsupported, "refuses to load 'builtins.set'")
        assertRefused(utf8("csubprocess\nPopen\n"), .unsupported, "refuses to load 'subprocess.Popen'")
        // Names with control characters stay on one line.
        assertRefused([0x8C, 0x03] + utf8("a\nb") + [0x8C, 0x01] + utf8("c") + [0x93], .unsupported, "'a\\x0ab.c'")
    }

    func testAdviceForWholePickledModels() throws {
        func message(_ bytes: [UInt8]) -> String {
            do { _ = try load(bytes); return "" } catch { return error.message }
        }
        let advice = "this looks like a whole pickled model"
        XCTAssertTrue(message(utf8("cfastai.learner\nLearner\n")).contains(advice))
        XCTAssertTrue(message(utf8("ctorchvision.models.resnet\nResNet\n")).contains(advice))
        XCTAssertTrue(message(utf8("c__main__\nNet\n)\u{81}ctorch.nn.modules.conv\nConv2d\n")).contains(advice))
        XCTAssertFalse(message(utf8("c__main__\nNet\n)\u{81}.")).contains(advice))
        XCTAssertFalse(message(utf8("cos\nsystem\n")).contains(advice))
    }

    func testOpcodesAStateDictNeverHas() {
        assertRefused(utf8("(i__main__\nX\n."), .unsupported, "INST/OBJ")
        assertRefused([0x28, 0x6F], .unsupported, "INST/OBJ")
        assertRefused([0x82, 0x01], .unsupported, "EXT1/2/4")
        assertRefused(utf8("P0\n"), .unsupported, "PERSID")
        assertRefused([0x80, 0x04, 0x8F], .unsupported, "sets")
        assertRefused([0x80, 0x05, 0x97], .unsupported, "out-of-band buffers")
        assertRefused(utf8("S'abc'\n."), .unsupported, "STRING")
        assertRefused([0x80, 0x06], .unsupported, "pickle protocol 6")
        assertRefused([0xFE], .invalidFormat, "unknown pickle opcode 0xfe (byte 0)")
    }

    func testMisuseOfAllowedOpcodes() {
        assertRefused([0x80, 0x02, 0x85], .invalidFormat, "stack underflow")
        assertRefused([0x4E, 0x28, 0x86], .invalidFormat, "stack underflow")  // items below a MARK are out of reach
        assertRefused([0x31], .invalidFormat, "no MARK")
        assertRefused([0x68, 0x05], .invalidFormat, "memo entry 5 is not defined")
        assertRefused([0x71, 0x00], .invalidFormat, "stack underflow")
        assertRefused([0x8C, 0x01, 0x78, 0x4E, 0x52], .invalidFormat, "REDUCE calls a str")
        assertRefused([0x7D, 0x4E, 0x61], .invalidFormat, "APPEND to a dict")
        assertRefused([0x5D, 0x4E, 0x4E, 0x73], .invalidFormat, "SETITEM on a list")
        assertRefused([0x7D, 0x5D, 0x4E, 0x73], .invalidFormat, "unhashable dict key (list)")
        assertRefused([0x7D, 0x28, 0x4E, 0x75], .invalidFormat, "odd number")
        assertRefused([0x5D, 0x4E, 0x62], .invalidFormat, "BUILD on a list")
        assertRefused(utf8("ccollections\nOrderedDict\n") + [0x4B, 0x01, 0x85, 0x52], .unsupported, "OrderedDict with arguments")
        assertRefused(utf8("ctorch._utils\n_rebuild_tensor_v2\n") + [0x29, 0x52], .invalidFormat, "takes 6 or 7 arguments, got 0")
        assertRefused(utf8("ctorch._utils\n_rebuild_parameter\n") + [0x4E, 0x88, 0x7D, 0x87, 0x52], .invalidFormat, "of a None, not a tensor")
        assertRefused(utf8("ctorch\nFloatStorage\n") + [0x29, 0x52], .unsupported, "is not called")
        assertRefused(utf8("c_codecs\nencode\n") + [0x8C, 0x03] + utf8("✓") + [0x8C, 0x06] + utf8("latin1") + [0x86, 0x52],
                      .invalidFormat, "not Latin-1")
        assertRefused([0x8C, 0x01, 0x78, 0x85, 0x51], .invalidFormat, "persistent id is not")
        assertRefused([0x28, 0x8C, 0x06] + utf8("module") + [0x4E, 0x4E, 0x4E, 0x4E, 0x74, 0x51], .unsupported,
                      "persistent id of kind 'module'")
    }

    func testMalformedScalars() {
        assertRefused([0x8A, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x01], .invalidFormat, "wider than 64 bits")
        assertRefused([0x8B, 0xFF, 0xFF, 0xFF, 0xFF], .invalidFormat, "negative length")
        assertRefused([0x8B, 0xFF, 0xFF, 0xFF, 0x7F], .invalidFormat, "truncated")
        assertRefused([0x58, 0x02, 0, 0, 0, 0xC3, 0x28], .invalidFormat, "not valid UTF-8")
        assertRefused([0x8D] + [UInt8](repeating: 0xFF, count: 8), .invalidFormat, "truncated")
        assertRefused([0x95, 0xFF, 0, 0, 0, 0, 0, 0, 0], .invalidFormat, "truncated")
        assertRefused(utf8("I12345678901234567890\n"), .invalidFormat, "fits 64 bits")
        assertRefused(utf8("Fabc\n"), .invalidFormat, "not a number")
        assertRefused(utf8("V\\u12\n"), .invalidFormat, "bad \\u escape")
        assertRefused(utf8("p-1\n"), .invalidFormat, "memo index")
        assertRefused([0x4E], .invalidFormat, "truncated")  // no STOP
    }

    func testEveryTruncationOfPythonsPickles() throws {
        for version in [0, 2, 4] {
            let data = try Data(contentsOf: fixtureURL("pth/pickles/basic_p\(version).pkl"))
            for length in 0..<data.count {
                XCTAssertThrowsError(try Unpickler.load(data.prefix(length)), "protocol \(version), \(length) bytes")
            }
        }
    }

    // MARK: - Hostile input

    func testLimitsOnStackAndNesting() {
        assertRefused([UInt8](repeating: 0x4E, count: Unpickler.maximumStackDepth + 1), .invalidFormat, "stack deeper")
        assertRefused([0x29] + [UInt8](repeating: 0x85, count: Unpickler.maximumTupleDepth + 1), .invalidFormat, "nested deeper")
        assertRefused([UInt8](repeating: 0x28, count: Unpickler.maximumStackDepth + 1), .invalidFormat, "too many MARKs")
    }

    func testDeepListsAndCyclesAreHarmless() throws {
        // 200 000 lists each inside the next, then a list that contains itself: the arena
        // holds them flat, so neither building nor freeing recurses.
        var bytes: [UInt8] = [0x5D]
        for _ in 0..<200_000 { bytes += [0x5D, 0x71, 0x00, 0x61, 0x68, 0x00] }  // new list, memo, append, recall
        bytes += [0x2E]
        let document = try load(bytes)
        XCTAssertEqual(document.lists.count, 200_001)
        let cycle = try load([0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E])
        guard case .list(let id) = cycle.root, case .list(let inner) = cycle.lists[id][0] else { return XCTFail("no cycle") }
        XCTAssertEqual(id, inner)
    }

    func testWorkIsBoundedByTheInputSize() {
        // A 64 KB key hashed over and over: refused once the work budget is spent.
        let key = [UInt8](repeating: 0x61, count: 65_536)
        var bytes: [UInt8] = [0x7D, 0x58, 0x00, 0x00, 0x01, 0x00] + key + [0x71, 0x00, 0x30, 0x28]
        for _ in 0..<40_000 { bytes += [0x68, 0x00, 0x4E] }
        bytes += [0x75, 0x2E]
        let start = Date()
        assertRefused(bytes, .invalidFormat, "too much work")
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }
}
