import Elucidate
@testable import ElucidateImage
import Foundation
import TestSupport
import XCTest

/// Issue 11, item 8: EXIF orientation. The default keeps the pixels as stored (as Pillow's
/// `open` and torchvision); `.apply` turns them as Pillow's `ImageOps.exif_transpose` does —
/// held to Pillow's own output on the fixtures of `tools/make_exif_fixtures.py`. The parser
/// reads outside bytes: malformed blocks mean "no orientation", never a crash.
final class ExifOrientationTests: XCTestCase {
    struct Entry: Decodable {
        let stored: [Int]
        let orientation: Int
        let applied: [Int]
        let pixels: String?
    }

    static let folder = packageRootURL.appendingPathComponent("Tests/Fixtures/exif")

    func testEveryOrientationMatchesPillowsExifTranspose() throws {
        let manifest = try JSONDecoder().decode([String: Entry].self,
                                                from: Data(contentsOf: Self.folder.appendingPathComponent("manifest.json")))
        XCTAssertEqual(manifest.count, 14)
        for (name, entry) in manifest.sorted(by: { $0.key < $1.key }) {
            let url = Self.folder.appendingPathComponent(name)
            let data = try Data(contentsOf: url)
            XCTAssertEqual(ExifOrientation.read(data) ?? 1, entry.orientation, name)
            let stored = try ImageDecoder.decode(data)
            XCTAssertEqual([stored.width, stored.height], entry.stored, "\(name) as stored")
            XCTAssertEqual(try ImageDecoder.decode(data, exif: .ignore), stored, name)
            let (applied, orientation) = try ImageDecoder.loadWithOrientation(url, exif: .apply)
            XCTAssertEqual(orientation ?? 1, entry.orientation, name)
            XCTAssertEqual([applied.width, applied.height], entry.applied, "\(name) applied")
            if let pixels = entry.pixels {
                let (shape, values) = try NPY.readInt32(Self.folder.appendingPathComponent(pixels))
                XCTAssertEqual(shape, [entry.applied[1], entry.applied[0], 3], name)
                XCTAssertEqual(applied.pixels, values.map { UInt8($0) }, "\(name): not Pillow's exif_transpose")
            }
        }
    }

    func testTheEightOrientationsAsAViewerShowsThem() {
        // 3 wide × 2 high, pixel value = its index: a b c / d e f.
        let image = RGBImage(width: 3, height: 2, pixels: (0..<6).flatMap { [UInt8($0), 0, 0] })
        func shown(_ orientation: Int) -> [UInt8] { stride(from: 0, to: 18, by: 3).map { image.applyingOrientation(orientation).pixels[$0] } }
        XCTAssertEqual(shown(1), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(shown(2), [2, 1, 0, 5, 4, 3])
        XCTAssertEqual(shown(3), [5, 4, 3, 2, 1, 0])
        XCTAssertEqual(shown(4), [3, 4, 5, 0, 1, 2])
        XCTAssertEqual(shown(5), [0, 3, 1, 4, 2, 5])  // 2 wide × 3 high from here on
        XCTAssertEqual(shown(6), [3, 0, 4, 1, 5, 2])  // turned 90° clockwise
        XCTAssertEqual(shown(7), [5, 2, 4, 1, 3, 0])
        XCTAssertEqual(shown(8), [2, 5, 1, 4, 0, 3])  // turned 90° counter-clockwise
        XCTAssertEqual(image.applyingOrientation(6).width, 2)
        for other in [0, 9, 255, -1] { XCTAssertEqual(image.applyingOrientation(other), image) }
    }

    /// An EXIF block with IFD0 entries (tag, type, count, 4 value bytes) in either byte order.
    private func tiff(_ entries: [(UInt16, UInt16, UInt32, [UInt8])], bigEndian: Bool = false, ifd: UInt32 = 8,
                      prefix: String = "Exif\0\0", declared: Int? = nil) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] { bigEndian ? u16(UInt16(v >> 16)) + u16(UInt16(v & 0xFFFF)) : u16(UInt16(v & 0xFFFF)) + u16(UInt16(v >> 16)) }
        var bytes = Array(prefix.utf8) + (bigEndian ? [0x4D, 0x4D, 0x00, 0x2A] : [0x49, 0x49, 0x2A, 0x00]) + u32(ifd)
        bytes += u16(UInt16(declared ?? entries.count))
        for (tag, type, count, value) in entries { bytes += u16(tag) + u16(type) + u32(count) + value }
        return bytes + u32(0)
    }

    private func orientation(_ block: [UInt8]) -> Int? { block.withUnsafeBufferPointer { ExifOrientation.fromTIFF($0) } }

    /// Each case is checked against Pillow 13 (`Image.Exif().load(block).get(0x0112)`).
    func testTheTIFFReaderIsStrictAndFollowsPillow() {
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [6, 0, 0, 0])])), 6)
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [0, 8, 0, 0])], bigEndian: true)), 8)
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [3, 0, 0, 0])], prefix: "Exif\0\0Exif\0\0")), 3, "a doubled prefix")
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [3, 0, 0, 0])], prefix: "")), 3, "a bare TIFF block (PNG eXIf)")
        XCTAssertEqual(orientation(tiff([(0x0112, 4, 1, [0, 0, 0, 5])], bigEndian: true)), 5, "LONG")
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 2, [6, 0, 1, 0])])), 6, "two values: the first, as Pillow truncates")
        XCTAssertEqual(orientation(tiff([(0x0112, 1, 1, [7, 0, 0, 0])])), 0, "BYTE reads as bytes: there, but meaningless")
        XCTAssertEqual(orientation(tiff([(0x0112, 5, 1, [30, 0, 0, 0]), (0, 0, 0, [12, 0, 0, 0, 2, 0, 0, 0])])), 6,
                       "RATIONAL 12/2 equals 6")
        XCTAssertEqual(orientation(tiff([(0x0112, 5, 1, [0xFF, 0xFF, 0, 0])])), nil, "a RATIONAL's data runs past the end")
        XCTAssertEqual(orientation(tiff([(0x0112, 99, 1, [6, 0, 0, 0])])), nil, "an unknown type is skipped")
        XCTAssertEqual(orientation(tiff([(0x0112, 99, 1, [6, 0, 0, 0]), (0x0112, 3, 1, [2, 0, 0, 0])])), 2)
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [6, 0, 0, 0]), (0x0112, 3, 1, [2, 0, 0, 0])])), 6, "the first one wins")
        XCTAssertEqual(orientation(tiff([(0x010F, 2, 40, [0xFF, 0, 0, 0]), (0x0112, 3, 1, [6, 0, 0, 0])])), 6,
                       "an entry larger than the block is skipped")
        XCTAssertEqual(orientation(tiff([(0x010F, 2, 8, [0xF0, 0, 0, 0]), (0x0112, 3, 1, [6, 0, 0, 0])])), nil,
                       "an entry whose data runs past the end ends the directory before the orientation")
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [6, 0, 0, 0])], declared: 60_000)), 6, "a truncated directory keeps what it read")
        XCTAssertEqual(orientation(tiff([(0x0112, 3, 1, [6, 0, 0, 0])], ifd: 0xFFFF_FFF0)), nil, "IFD0 beyond the block")
        var badMagic = tiff([(0x0112, 3, 1, [6, 0, 0, 0])])
        badMagic[8] = 0x2B  // BigTIFF
        XCTAssertNil(orientation(badMagic))
        for cut in 0..<tiff([(0x0112, 3, 1, [6, 0, 0, 0])]).count {
            _ = orientation(Array(tiff([(0x0112, 3, 1, [6, 0, 0, 0])]).prefix(cut)))  // never reads past the end
        }
        XCTAssertEqual(Array("<tiff:Orientation>4</tiff:Orientation>".utf8).withUnsafeBufferPointer { ExifOrientation.fromXMP($0) }, 4)
        XCTAssertNil(Array("tiff:Orientation=\"".utf8).withUnsafeBufferPointer { ExifOrientation.fromXMP($0) })
    }

    func testMalformedFilesReadAsNoOrientationAndNeverCrash() throws {
        let jpeg = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent("o6.jpg")))
        let png = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent("o6.png")))
        // Every prefix of the files.
        for file in [jpeg, png] {
            for cut in stride(from: 0, through: min(file.count, 300), by: 1) { _ = ExifOrientation.read(Data(file.prefix(cut))) }
        }
        // A broken PNG chunk CRC: the eXIf block is not trusted (Pillow refuses the file).
        var badCRC = png
        let exif = try XCTUnwrap(badCRC.indices.first { Array(badCRC[$0..<($0 + 4)]) == Array("eXIf".utf8) })
        let length = Int(badCRC[exif - 4]) << 24 | Int(badCRC[exif - 3]) << 16 | Int(badCRC[exif - 2]) << 8 | Int(badCRC[exif - 1])
        badCRC[exif + 4 + length] ^= 1
        XCTAssertNil(ExifOrientation.read(Data(badCRC)))
        // Random byte changes in the headers: decoding and orienting never crash.
        var random = SeededRandom(seed: 11)
        for _ in 0..<1500 {
            var mutated = random.next() & 1 == 0 ? jpeg : png
            for _ in 0...(random.next() % 4) {
                let at = Int(random.next() % UInt64(min(mutated.count, 160)))
                mutated[at] = UInt8(truncatingIfNeeded: random.next())
            }
            if let image = try? ImageDecoder.decode(Data(mutated), exif: .apply) {
                XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
            }
        }
    }
}
