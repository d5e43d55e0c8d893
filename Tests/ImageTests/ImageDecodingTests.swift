import Foundation
import XCTest
import Elucidate
import TestSupport

/// Tests/Fixtures/images/manifest.json, written by tools/make_image_fixtures.py.
struct ImageFixtureManifest: Decodable {
    struct Preset: Decodable {
        let crop: String
        let fnv1a64: String
        let resizedWidth: Int
        let resizedHeight: Int
        let tensor: String?
    }
    struct Entry: Decodable {
        let format: String
        let pillowMode: String
        let width: Int
        let height: Int
        let fnv1a64: String
        let rgb: String?
        let note: String?
        let presets: [String: Preset]?
    }
    struct Resize: Decodable {
        let file: String
        let width: Int
        let height: Int
        let fnv1a64: String
    }
    let images: [String: Entry]
    let rejected: [String: String]
    let resize: [Resize]

    static func load() throws -> ImageFixtureManifest {
        let data = try Data(contentsOf: imageFixture("manifest.json"))
        return try JSONDecoder().decode(ImageFixtureManifest.self, from: data)
    }
}

func imageFixture(_ name: String) -> URL { fixtureURL("images/" + name) }

/// FNV-1a 64 as a 16-digit hex string (the manifest's pixel hashes).
func fnv1a64(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01B3
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// Pillow's decoded pixels for a manifest entry, from its `.rgb.npy` (int32 HWC) or lossless `.rgb.png`.
func pillowPixels(_ entry: ImageFixtureManifest.Entry) throws -> [UInt8]? {
    guard let file = entry.rgb else { return nil }
    if file.hasSuffix(".npy") {
        let (shape, values) = try NPY.readInt32(imageFixture(file))
        XCTAssertEqual(shape, [entry.height, entry.width, 3], file)
        return values.map { UInt8(clamping: $0) }
    }
    let image = try ImageDecoder.load(imageFixture(file))
    XCTAssertEqual(fnv1a64(image.pixels), entry.fnv1a64, "\(file) must decode to the pixels Pillow wrote")
    return image.pixels
}

/// Mean and maximum absolute difference, in 8-bit levels.
func pixelDifference(_ a: [UInt8], _ b: [UInt8]) -> (mean: Double, max: Int, differing: Int) {
    precondition(a.count == b.count)
    var total = 0, worst = 0, differing = 0
    for (x, y) in zip(a, b) {
        let d = abs(Int(x) - Int(y))
        total += d
        worst = max(worst, d)
        if d != 0 { differing += 1 }
    }
    return (a.isEmpty ? 0 : Double(total) / Double(a.count), worst, differing)
}

final class ImageDecodingTests: XCTestCase {
    func testEveryFixtureDecodesLikePillow() throws {
        let manifest = try ImageFixtureManifest.load()
        XCTAssertGreaterThanOrEqual(manifest.images.count, 20)
        for (name, entry) in manifest.images.sorted(by: { $0.key < $1.key }) {
            let image = try ImageDecoder.load(imageFixture(name))
            XCTAssertEqual(image.width, entry.width, name)
            XCTAssertEqual(image.height, entry.height, name)
            XCTAssertEqual(image.pixels.count, entry.width * entry.height * 3, name)
            if entry.format == "PNG" {
                XCTAssertEqual(fnv1a64(image.pixels), entry.fnv1a64, "\(name) (Pillow mode \(entry.pillowMode)) must equal Pillow exactly")
                if let reference = try pillowPixels(entry) {
                    let d = pixelDifference(image.pixels, reference)
                    XCTAssertEqual(d.differing, 0, "\(name): \(d.differing) samples differ from Pillow, max \(d.max)")
                }
            } else {
                let reference = try XCTUnwrap(try pillowPixels(entry), name)
                let d = pixelDifference(image.pixels, reference)
                print("JPEG decode parity \(name): MAE \(String(format: "%.4f", d.mean)) levels, max \(d.max), "
                      + "\(d.differing) of \(reference.count) samples differ (libjpeg-turbo 2.1.5 vs Pillow's)")
                XCTAssertLessThanOrEqual(d.mean, 1.0, name)
            }
        }
    }

    func testEveryPNGLayoutIsCovered() throws {
        let manifest = try ImageFixtureManifest.load()
        // Colour type / bit depth / interlace combinations the fixtures must include.
        for name in ["gray.png", "gray1.png", "gray2.png", "gray4.png", "gray16.png", "gray_trns.png",
                     "gray_alpha.png", "gray_alpha16.png", "rgb.png", "rgb16.png", "rgb_trns.png",
                     "rgba.png", "rgba16.png", "palette1_trns.png", "palette4.png", "palette8_trns.png",
                     "interlaced.png", "interlaced_gray4.png", "with_chunks.png"] {
            XCTAssertNotNil(manifest.images[name], "missing fixture \(name)")
        }
    }

    func testSixteenBitGrayKeepsTheHighByte() throws {
        // Pillow's convert("RGB") clips I;16 values above 255 to white; we keep the high
        // byte, as Pillow itself does for 16-bit RGB, RGBA and gray+alpha.
        let image = try ImageDecoder.load(imageFixture("gray16.png"))
        let entry = try XCTUnwrap(try ImageFixtureManifest.load().images["gray16.png"])
        XCTAssertEqual(fnv1a64(image.pixels), entry.fnv1a64)
        XCTAssertGreaterThan(Set(image.pixels).count, 50, "a 16-bit gradient must not collapse to a few levels")
    }

    func testJPEGToleratesTrailingDataAndExtraneousBytes() throws {
        let data = try Data(contentsOf: imageFixture("progressive444.jpg"))
        let original = try ImageDecoder.decode(data)
        XCTAssertEqual(try ImageDecoder.decode(data + Data("trailing garbage".utf8)), original)
        // Two stray bytes before the EOI marker make libjpeg warn "extraneous bytes";
        // Pillow decodes such files, so must we.
        var extraneous = data
        XCTAssertEqual(Array(extraneous.suffix(2)), [0xFF, 0xD9])
        extraneous.insert(contentsOf: [0x12, 0x34], at: extraneous.count - 2)
        XCTAssertEqual(try ImageDecoder.decode(extraneous), original)
    }

    // MARK: Refusals

    private func assertDecodeError(
        _ url: URL, kind: ElucidateError.Kind, containing text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let image = try ImageDecoder.load(url)
            XCTFail("\(url.lastPathComponent) decoded to \(image)", file: file, line: line)
        } catch {
            print("refused \(url.lastPathComponent): [\(error.kind)] \(error.message)")
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertEqual(error.path, url.path, file: file, line: line)
            XCTAssertTrue(error.message.contains(text), "message: \(error.message)", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(url.path + ": "), file: file, line: line)
        }
    }

    func testTruncatedFilesAreErrors() {
        assertDecodeError(imageFixture("truncated.jpg"), kind: .invalidFormat, containing: "truncated JPEG")
        assertDecodeError(imageFixture("truncated.png"), kind: .invalidFormat, containing: "truncated PNG")
        assertDecodeError(imageFixture("truncated_header.png"), kind: .invalidFormat, containing: "truncated PNG")
    }

    /// Cutting a file anywhere inside the image data is an error, never a partly grey image
    /// (Pillow raises "image file is truncated" for the same files).
    func testEveryTruncationPointIsAnError() throws {
        func jpegCuts(_ data: Data) -> [Int] {
            Array(stride(from: 1, to: data.count, by: data.count / 60)) + [data.count - 2, data.count - 1]
        }
        let jpeg = try Data(contentsOf: imageFixture("photo.jpg"))
        let progressive = try Data(contentsOf: imageFixture("progressive444.jpg"))
        let png = try Data(contentsOf: imageFixture("small.png"))
        let interlaced = try Data(contentsOf: imageFixture("interlaced.png"))
        // A PNG's last 12 bytes are the IEND chunk; the image data ends before the last IDAT's CRC.
        func pngCuts(_ data: Data) -> [Int] {
            Array(stride(from: 1, to: data.count - 16, by: data.count / 60)) + [data.count - 17]
        }
        for (data, cuts) in [(jpeg, jpegCuts(jpeg)), (progressive, jpegCuts(progressive)),
                             (png, pngCuts(png)), (interlaced, pngCuts(interlaced))] {
            for cut in cuts {
                XCTAssertThrowsError(try ImageDecoder.decode(data.prefix(cut)), "cut at \(cut) of \(data.count)") { error in
                    let e = error as? ElucidateError
                    XCTAssertEqual(e?.kind, .invalidFormat, "cut at \(cut): \(error)")
                    XCTAssertTrue(e?.message.contains("truncated") ?? false, "cut at \(cut): \(error)")
                }
            }
        }
        // A PNG missing only its IEND chunk still holds every pixel, and decodes (as in Pillow).
        XCTAssertEqual(try ImageDecoder.decode(png.prefix(png.count - 12)), try ImageDecoder.decode(png))
    }

    func testCorruptPNGIsAnError() {
        assertDecodeError(imageFixture("corrupt.png"), kind: .invalidFormat, containing: "PNG")
    }

    func testNotAnImage() {
        assertDecodeError(imageFixture("not_an_image.txt"), kind: .invalidFormat, containing: "not a JPEG or PNG image")
        assertDecodeError(imageFixture("image.gif"), kind: .unsupported, containing: "GIF")
        assertDecodeError(imageFixture("cmyk.jpg"), kind: .unsupported, containing: "CMYK")
    }

    func testEmptyMissingAndFolder() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let empty = folder.appendingPathComponent("empty.png")
        try Data().write(to: empty)
        assertDecodeError(empty, kind: .invalidFormat, containing: "empty")
        assertDecodeError(folder.appendingPathComponent("missing.jpg"), kind: .fileNotFound, containing: "no such file")
        assertDecodeError(folder, kind: .unreadable, containing: "folder")
    }

    func testDecodeErrorsCarryNoPath() {
        XCTAssertThrowsError(try ImageDecoder.decode(Data([1, 2, 3]))) { error in
            let e = error as? ElucidateError
            XCTAssertEqual(e?.kind, .invalidFormat)
            XCTAssertNil(e?.path)
            XCTAssertEqual(e?.message, "not a JPEG or PNG image")
        }
        XCTAssertNil(ImageDecoder.sniff(Data([0x89, 0x50, 0x4E, 0x47])))
        XCTAssertEqual(ImageDecoder.sniff(Data([0xFF, 0xD8, 0xFF, 0xE0])), .jpeg)
    }

    func testHostileDimensionsAreRefusedBeforeAllocating() throws {
        // A PNG whose IHDR claims 30001 x 1 and one claiming 20000 x 20000 (400 MP).
        for (width, height) in [(30001, 1), (20000, 20000)] {
            let png = Self.pngWithHeader(width: UInt32(width), height: UInt32(height))
            XCTAssertThrowsError(try ImageDecoder.decode(png)) { error in
                XCTAssertEqual((error as? ElucidateError)?.kind, .unsupported, "\(error)")
                XCTAssertTrue("\(error)".contains("limit"), "\(error)")
            }
        }
        // A JPEG whose SOF claims 65000 x 65000.
        var jpeg = [UInt8](try Data(contentsOf: imageFixture("photo.jpg")))
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 5] = 0xFD; jpeg[sof + 6] = 0xE8  // height 65000
        jpeg[sof + 7] = 0xFD; jpeg[sof + 8] = 0xE8  // width 65000
        XCTAssertThrowsError(try ImageDecoder.decode(Data(jpeg))) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .unsupported, "\(error)")
        }
    }

    func testRandomDamageNeverCrashes() throws {
        var random = SeededGenerator(seed: 7)
        for name in ["small.png", "progressive444.jpg", "interlaced.png", "gray.jpg"] {
            let data = [UInt8](try Data(contentsOf: imageFixture(name)))
            for iteration in 0..<60 {
                var damaged = data
                if iteration % 3 == 0 {
                    damaged = Array(damaged.prefix(Int.random(in: 0..<data.count, using: &random)))
                } else {
                    for _ in 0..<Int.random(in: 1...8, using: &random) {
                        damaged[Int.random(in: 0..<damaged.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    }
                }
                do {
                    let image = try ImageDecoder.decode(Data(damaged))
                    XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
                } catch {
                    XCTAssertTrue([.invalidFormat, .unsupported].contains(error.kind), "\(name): \(error)")
                    XCTAssertFalse(error.message.isEmpty)
                }
            }
        }
    }

    /// A PNG with a signature, an IHDR (8-bit RGB), an IDAT holding only a zlib header, and an IEND.
    static func pngWithHeader(width: UInt32, height: UInt32) -> Data {
        func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        func crc32(_ bytes: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
            }
            return ~c
        }
        func chunk(_ type: String, _ payload: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + payload
            return bigEndian(UInt32(payload.count)) + body + bigEndian(crc32(body))
        }
        let ihdr = bigEndian(width) + bigEndian(height) + [8, 2, 0, 0, 0]
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", [0x78, 0x9C]) + chunk("IEND", []))
    }
}
