import Foundation
import XCTest
import Elucidate
@testable import ElucidateIO
import TestSupport

/// The ZIP reader on archives torch.save and Python's zipfile wrote, and on archives
/// built here with one fault each.
final class ZipArchiveTests: XCTestCase {
    // MARK: - Building archives by hand

    /// One file of a hand-built archive; every field can be falsified.
    private struct File {
        var name: String
        var contents: Data
        var method = 0
        var flags = 0x0800
        var localName: String?
        var crc: UInt32?
        /// Sizes and offset in ZIP64 extra fields (central and local).
        var zip64 = false
        /// Override of the local header offset written in the central directory.
        var offset: Int?
        var centralSize: Int?
    }

    private func le16(_ value: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, Array.init) }
    private func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    private func le32(_ value: Int) -> [UInt8] { le32(UInt32(truncatingIfNeeded: value)) }
    private func le64(_ value: Int) -> [UInt8] { withUnsafeBytes(of: UInt64(value).littleEndian, Array.init) }

    /// `prefix`, the files' local headers and data, the central directory, an optional
    /// ZIP64 end record and locator, and the end record (+ `comment`, + `suffix`).
    private func build(_ files: [File], prefix: [UInt8] = [], zip64End: Bool = false, comment: [UInt8] = [],
                       suffix: [UInt8] = [], entriesOnDisk: Int? = nil) -> Data {
        var body = prefix
        var central: [UInt8] = []
        for file in files {
            let offset = body.count
            let crc = file.crc ?? ZipArchive.crc32(file.contents)
            let name = Array(file.name.utf8)
            let localName = Array((file.localName ?? file.name).utf8)
            let size = file.contents.count
            let localExtra = file.zip64 ? le16(1) + le16(16) + le64(size) + le64(size) : []
            body += le32(0x0403_4B50) + le16(45) + le16(file.flags) + le16(file.method) + le16(0) + le16(0x21)
            body += le32(crc) + (file.zip64 ? le32(0xFFFF_FFFF as UInt32) + le32(0xFFFF_FFFF as UInt32) : le32(size) + le32(size))
            body += le16(localName.count) + le16(localExtra.count) + localName + localExtra
            body += Array(file.contents)
            let centralSize = file.centralSize ?? size
            let centralOffset = file.offset ?? offset
            let extra = file.zip64 ? le16(1) + le16(24) + le64(centralSize) + le64(centralSize) + le64(centralOffset) : []
            central += le32(0x0201_4B50) + le16(0x031E) + le16(45) + le16(file.flags) + le16(file.method) + le16(0) + le16(0x21)
            central += le32(crc)
            central += file.zip64 ? le32(0xFFFF_FFFF as UInt32) + le32(0xFFFF_FFFF as UInt32) : le32(centralSize) + le32(centralSize)
            central += le16(name.count) + le16(extra.count) + le16(0) + le16(0) + le16(0) + le32(0)
            central += file.zip64 ? le32(0xFFFF_FFFF as UInt32) : le32(centralOffset)
            central += name + extra
        }
        let centralOffset = body.count
        body += central
        if zip64End {
            let record = body.count
            body += le32(0x0606_4B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
            body += le64(files.count) + le64(files.count) + le64(central.count) + le64(centralOffset)
            body += le32(0x0706_4B50) + le32(0) + le64(record) + le32(1)
            body += le32(0x0605_4B50) + le16(0) + le16(0) + le16(0xFFFF) + le16(0xFFFF)
            body += le32(0xFFFF_FFFF as UInt32) + le32(0xFFFF_FFFF as UInt32) + le16(comment.count)
        } else {
            body += le32(0x0605_4B50) + le16(0) + le16(0) + le16(entriesOnDisk ?? files.count) + le16(files.count)
            body += le32(central.count) + le32(centralOffset) + le16(comment.count)
        }
        return Data(body + comment + suffix)
    }

    private func assertRefused(_ data: Data, _ kind: ElucidateError.Kind, _ fragment: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        do {
            let archive = try ZipArchive(bytes: data)
            XCTFail("accepted (\(archive.entries.map(\.name))); expected \(fragment)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "multi-line error", file: file, line: line)
        }
    }

    private let hello = Data("hello, world".utf8)

    // MARK: - Reading

    func testCRC32() {
        XCTAssertEqual(ZipArchive.crc32(Data("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(ZipArchive.crc32(Data()), 0)
        // Slicing-by-8 against the bytewise definition, at every length and alignment.
        var rng = SeededGenerator(seed: 11)
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        func reference(_ slice: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in slice {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return ~crc
        }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                let slice = bytes[start..<end]
                XCTAssertEqual(slice.withUnsafeBytes { ZipArchive.crc32($0) }, reference(slice), "\(start)..<\(end)")
            }
        }
        let split = bytes.withUnsafeBytes { raw in
            ZipArchive.crc32(UnsafeRawBufferPointer(rebasing: raw[100...]),
                             continuing: ZipArchive.crc32(UnsafeRawBufferPointer(rebasing: raw[..<100])))
        }
        XCTAssertEqual(split, reference(bytes[...]))
    }

    func testTorchSaveArchive() throws {
        // Data descriptors (flag bit 3, zero sizes in local headers), 64-byte aligned data
        // through "FB" extra fields, a ZIP64 end record and locator.
        let archive = try ZipArchive(bytes: try Data(contentsOf: fixtureURL("pth/tiny.pth")))
        XCTAssertEqual(archive.entries.first?.name, "tiny/data.pkl")
        XCTAssertTrue(archive.entries.allSatisfy { $0.name.hasPrefix("tiny/") })
        XCTAssertTrue(archive.entries.contains { $0.name == "tiny/data/0" && $0.dataOffset % 64 == 0 })
        XCTAssertEqual(try archive.contents(of: "tiny/byteorder"), Data("little".utf8))
        for entry in archive.entries {
            XCTAssertEqual(try archive.contents(of: entry.name).count, entry.size, entry.name)
        }
        XCTAssertThrowsError(try archive.contents(of: "tiny/none")) { error in
            XCTAssertTrue("\(error)".contains("no entry 'tiny/none'"))
        }
    }

    func testPythonZipfileArchive() throws {
        let archive = try ZipArchive(bytes: try Data(contentsOf: fixtureURL("pth/os_system.pth")))
        XCTAssertEqual(archive.entries.map(\.name), ["os_system/data.pkl", "os_system/byteorder", "os_system/version"])
        XCTAssertEqual(try archive.contents(of: "os_system/version"), Data("3\n".utf8))
    }

    func testWriterRoundTrip() throws {
        let files: [(name: String, contents: Data)] = [("a/data.pkl", Data([0x80, 0x02, 0x2E])), ("a/empty", Data()),
                                                       ("a/data/0", Data(count: 1000)), ("a/naïve", hello)]
        let archive = try ZipArchive(bytes: ZipArchive.storedArchive(files))
        XCTAssertEqual(archive.entries.map(\.name), files.map(\.name))
        for (name, contents) in files {
            XCTAssertEqual(try archive.contents(of: name), contents, name)
            XCTAssertEqual(archive.entry(name)?.crc32, ZipArchive.crc32(contents))
        }
        XCTAssertEqual(try ZipArchive(bytes: ZipArchive.storedArchive([])).entries, [])
    }

    func testZIP64RecordsAndExtraFields() throws {
        let data = build([File(name: "x/a", contents: hello, zip64: true), File(name: "x/b", contents: Data([1, 2]))],
                         zip64End: true, comment: Array("note".utf8))
        let archive = try ZipArchive(bytes: data)
        XCTAssertEqual(archive.entries.map(\.name), ["x/a", "x/b"])
        XCTAssertEqual(try archive.contents(of: "x/a"), hello)
        XCTAssertEqual(try archive.contents(of: "x/b"), Data([1, 2]))
        // A locator pointing outside the archive, or at something else.
        var bad = data
        let locator = data.count - 4 - 22 - 20
        bad.replaceSubrange((locator + 8)..<(locator + 16), with: le64(1 << 40))
        assertRefused(bad, .invalidFormat, "ZIP64 end record offset")
        bad = data
        bad.replaceSubrange((locator + 8)..<(locator + 16), with: le64(0))
        assertRefused(bad, .invalidFormat, "no ZIP64 end record")
    }

    func testReadingACorruptEntryFailsItsCRC() throws {
        var data = build([File(name: "a", contents: hello)])
        data[31] ^= 1  // first byte of the contents
        let archive = try ZipArchive(bytes: data)
        XCTAssertThrowsError(try archive.contents(of: "a")) { error in
            XCTAssertTrue("\(error)".contains("entry 'a' is corrupt: CRC-32"), "\(error)")
        }
    }

    func testCompressedEntriesAreRefusedWhenRead() throws {
        let archive = try ZipArchive(bytes: build([File(name: "a", contents: hello, method: 8), File(name: "b", contents: hello)]))
        XCTAssertEqual(archive.entry("a")?.method, 8)
        XCTAssertEqual(try archive.contents(of: "b"), hello)
        XCTAssertThrowsError(try archive.contents(of: "a")) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .unsupported)
            XCTAssertTrue("\(error)".contains("entry 'a' is deflate-compressed (method 8); only stored (uncompressed) entries"), "\(error)")
        }
        let lzma = try ZipArchive(bytes: build([File(name: "a", contents: hello, method: 14)]))
        XCTAssertThrowsError(try lzma.contents(of: "a")) { XCTAssertTrue("\($0)".contains("compressed with method 14")) }
    }

    // MARK: - Refusals

    func testNotAZipArchive() {
        assertRefused(Data(), .invalidFormat, "shorter than an end-of-central-directory record")
        assertRefused(Data(count: 100), .invalidFormat, "no end-of-central-directory record")
        let good = build([File(name: "a", contents: hello)])
        assertRefused(good + Data([0]), .invalidFormat, "no end-of-central-directory record")  // trailing byte
        assertRefused(Data([0x50, 0x4B, 0x03, 0x04]) + good, .invalidFormat, "central directory")  // leading bytes
        assertRefused(build([File(name: "a", contents: hello)], prefix: [1, 2, 3]), .invalidFormat, "3 unexplained bytes before its first entry")
    }

    func testEveryTruncationIsRefused() throws {
        let data = try Data(contentsOf: fixtureURL("pth/tiny.pth"))
        for length in 0..<data.count {
            XCTAssertThrowsError(try ZipArchive(bytes: data.prefix(length)), "\(length) bytes")
        }
    }

    func testStructuralFaults() {
        assertRefused(build([File(name: "a", contents: hello, flags: 0x0801)]), .unsupported, "entry 'a' is encrypted")
        assertRefused(build([File(name: "a", contents: hello, localName: "b")]), .invalidFormat, "local header does not match")
        assertRefused(build([File(name: "a", contents: hello, centralSize: 20)]), .invalidFormat, "runs into the central directory")
        assertRefused(build([File(name: "a", contents: hello, offset: 5)]), .invalidFormat, "no local header")
        assertRefused(build([File(name: "a", contents: hello, offset: 1 << 30)]), .invalidFormat, "outside the archive")
        assertRefused(build([File(name: "a", contents: hello), File(name: "a", contents: hello)]), .invalidFormat, "names 'a' twice")
        assertRefused(build([File(name: "a", contents: hello)], entriesOnDisk: 0), .unsupported, "multi-disk")
        // Two central entries for one local header.
        assertRefused(build([File(name: "a", contents: hello), File(name: "a/", contents: Data(), localName: "a", offset: 0)]),
                      .invalidFormat, "local header does not match")
    }

    func testOverlappingEntriesAreRefused() throws {
        // Entry 'a' holds, inside its own data, a complete local header and data for 'b'.
        let inner = build([File(name: "b", contents: hello)])
        let innerLocal = inner.prefix(30 + 1 + hello.count)
        let data = build([File(name: "a", contents: innerLocal), File(name: "b", contents: hello, offset: 30 + 1)])
        // The real local header of 'b' follows 'a'; point the directory at the nested one.
        assertRefused(data, .invalidFormat, "entries 'a' and 'b' overlap")
    }

    func testUnsafeNamesAreRefused() {
        for name in ["../evil", "/etc/passwd", "a\\b", "a//b", "./a", "a/../b", "a/.", "c:/x", "a\u{1}b", "a\u{7F}"] {
            assertRefused(build([File(name: name, contents: hello)]), .invalidFormat, "unsafe entry name")
        }
        XCTAssertNoThrow(try ZipArchive(bytes: build([File(name: "folder/", contents: Data()), File(name: "folder/a.b", contents: hello),
                                                        File(name: "my:model/data.pkl", contents: hello)])))
    }

    func testEntryCountMustFitTheDirectory() {
        var data = build([File(name: "a", contents: hello)])
        let end = data.count - 22
        data.replaceSubrange((end + 8)..<(end + 12), with: le16(9) + le16(9))
        assertRefused(data, .invalidFormat, "cannot hold 9 entries")
    }
}
