import ElucidateCore
import ElucidateIO
import Foundation

/// What to do with the orientation a photo records (EXIF tag 0x0112, Orientation).
///
/// Phones store the sensor's pixels and record how to turn them: a portrait photo is often
/// stored 4032 wide × 3024 high with orientation 6 ("turn 90° clockwise to view").
public enum ExifRule: String, Sendable, CaseIterable {
    /// The pixels as stored, as `PIL.Image.open` and torchvision's loaders give them — what most
    /// training pipelines saw. The default.
    case ignore
    /// The image as a photo viewer shows it: Pillow's `ImageOps.exif_transpose`, for pipelines
    /// that applied it.
    case apply
}

/// Reads the orientation a JPEG or PNG records, as Pillow's `Image.getexif()` finds it, from
/// the file's bytes (a parser of outside bytes: every read is bounds-checked, nothing is
/// trusted, and a malformed block counts as no orientation — the pixels still decode).
///
/// - JPEG: the first APP1 `Exif\0\0` segment before the scan (later ones appended, as Pillow
///   does), a TIFF header in either byte order, and IFD0's tag 0x0112 (`fromTIFF`); when IFD0
///   has no such tag, `tiff:Orientation` in the last XMP APP1 segment (`http://ns.adobe.com/xap/1.0/`).
/// - PNG: the first `eXIf` chunk whose CRC is right; without one, `tiff:Orientation` in an
///   uncompressed `iTXt` chunk `XML:com.adobe.xmp`.
///
/// Not read (Pillow reads them; cameras and phones do not write them): compressed iTXt XMP,
/// ImageMagick's "Raw profile type exif" text chunks and BigTIFF EXIF blocks.
public enum ExifOrientation {
    /// The value recorded (1 … 8 for the eight orientations; anything else changes nothing),
    /// or nil when the file records none.
    public static func read(_ data: Data) -> Int? {
        data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return fromJPEG(bytes) }
            if bytes.count >= 8, Array(bytes.prefix(8)) == pngSignature { return fromPNG(bytes) }
            return nil
        }
    }

    // MARK: - JPEG

    static func fromJPEG(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var exif: [UInt8]?
        var xmp: Range<Int>?
        var position = 2
        let count = bytes.count
        // Marker segments up to the first scan: FF xx, then a big-endian length that counts itself.
        while position < count, bytes[position] == 0xFF {
            while position < count, bytes[position] == 0xFF { position += 1 }  // fill bytes
            guard position < count else { break }
            let marker = bytes[position]
            position += 1
            if marker == 0xDA || marker == 0xD9 { break }  // start of scan, end of image
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { continue }  // no length
            guard count - position >= 2 else { break }
            let length = Int(bytes[position]) << 8 | Int(bytes[position + 1])
            guard length >= 2, length <= count - position else { break }
            let segment = (position + 2)..<(position + length)
            if marker == 0xE1 {
                if starts(bytes, segment, with: exifHeader) {
                    if exif == nil { exif = Array(bytes[segment]) } else { exif! += bytes[(segment.lowerBound + 6)..<segment.upperBound] }
                } else if starts(bytes, segment, with: xmpHeader) {
                    xmp = (segment.lowerBound + xmpHeader.count)..<segment.upperBound  // the last one, as Pillow
                }
            }
            position += length
        }
        if let exif, let value = exif.withUnsafeBufferPointer({ fromTIFF($0) }) { return value }
        return xmp.flatMap { fromXMP(UnsafeBufferPointer(rebasing: bytes[$0])) }
    }

    // MARK: - PNG

    static func fromPNG(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var position = 8
        var xmp: Int?
        while bytes.count - position >= 12 {
            let length = Int(readUInt32(bytes, position, bigEndian: true))
            guard length <= 0x7FFF_FFFF, length <= bytes.count - position - 12 else { break }
            let type = Array(bytes[(position + 4)..<(position + 8)])
            let data = (position + 8)..<(position + 8 + length)
            let crc = readUInt32(bytes, data.upperBound, bigEndian: true)
            let intact = { crc32(UnsafeBufferPointer(rebasing: bytes[(position + 4)..<data.upperBound])) == crc }
            if type == Array("eXIf".utf8), intact() {
                return Array(bytes[data]).withUnsafeBufferPointer { fromTIFF($0) } ?? xmp
            }
            if type == Array("iTXt".utf8), xmp == nil, intact() { xmp = fromITXt(UnsafeBufferPointer(rebasing: bytes[data])) }
            if type == Array("IEND".utf8) { break }
            position = data.upperBound + 4
        }
        return xmp
    }

    /// `tiff:Orientation` in an iTXt chunk: keyword `XML:com.adobe.xmp`, NUL, compression flag 0,
    /// method, language tag NUL, translated keyword NUL, text.
    private static func fromITXt(_ chunk: UnsafeBufferPointer<UInt8>) -> Int? {
        let keyword = Array("XML:com.adobe.xmp\0".utf8)
        guard chunk.count > keyword.count + 2, Array(chunk.prefix(keyword.count)) == keyword,
              chunk[keyword.count] == 0 else { return nil }  // compressed text is not read
        var position = keyword.count + 2
        for _ in 0..<2 {  // language tag, translated keyword
            guard let end = chunk[position...].firstIndex(of: 0) else { return nil }
            position = end + 1
        }
        return fromXMP(UnsafeBufferPointer(rebasing: chunk[position...]))
    }

    // MARK: - TIFF and XMP

    /// Tag 0x0112 of IFD0 in an EXIF block (`Exif\0\0` prefixes, up to two, are skipped), as
    /// Pillow 13's `Exif.load` and `get(0x0112)` read it: its value when it is a whole number,
    /// 0 when the tag is there but its value is not one (bytes, text, 6.5: it changes nothing,
    /// and it hides XMP), nil without the tag. Like Pillow, entries are read in order: the
    /// first of duplicates wins, entries of unknown types are skipped, entries whose data
    /// would add up to more than the block are skipped, and an entry whose data runs past the
    /// end ends the directory (keeping what was read).
    static func fromTIFF(_ block: UnsafeBufferPointer<UInt8>) -> Int? {
        var start = 0
        for _ in 0..<2 where starts(block, start..<block.count, with: exifHeader) { start += exifHeader.count }
        let tiff = UnsafeBufferPointer(rebasing: block[start...])
        guard tiff.count >= 8 else { return nil }
        let bigEndian: Bool
        switch (tiff[0], tiff[1], tiff[2], tiff[3]) {
        case (0x49, 0x49, 0x2A, 0x00), (0x49, 0x49, 0x00, 0x2A): bigEndian = false
        case (0x4D, 0x4D, 0x00, 0x2A), (0x4D, 0x4D, 0x2A, 0x00): bigEndian = true
        default: return nil  // BigTIFF and anything else
        }
        let directory = Int(readUInt32(tiff, 4, bigEndian: bigEndian))
        guard directory <= tiff.count - 2 else { return nil }
        let entries = Int(readUInt16(tiff, directory, bigEndian: bigEndian))
        // Unit sizes of the TIFF types Pillow reads.
        let unitSizes: [Int: Int] = [1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8]
        var outOfLine = 0
        for index in 0..<entries {
            let entry = directory + 2 + 12 * index
            guard entry <= tiff.count - 12 else { break }
            let tag = readUInt16(tiff, entry, bigEndian: bigEndian)
            let type = Int(readUInt16(tiff, entry + 2, bigEndian: bigEndian))
            let count = Int(readUInt32(tiff, entry + 4, bigEndian: bigEndian))
            guard let unit = unitSizes[type] else { continue }
            let size = count * unit
            var at = entry + 8
            if size > 4 {
                outOfLine += size
                if outOfLine > tiff.count { continue }
                at = Int(readUInt32(tiff, entry + 8, bigEndian: bigEndian))
                guard at <= tiff.count, size <= tiff.count - at else { break }
            }
            guard tag == 0x0112, size > 0 else { continue }
            return wholeNumber(tiff, at: at, type: type, bigEndian: bigEndian) ?? 0
        }
        return nil
    }

    /// The first value of a TIFF field of `type` at `at`, if it is a whole number (as a Python
    /// `int`, `float` or `IFDRational` equal to one, which Pillow's orientation table matches).
    private static func wholeNumber(_ tiff: UnsafeBufferPointer<UInt8>, at: Int, type: Int, bigEndian: Bool) -> Int? {
        func u32(_ offset: Int) -> UInt32 { readUInt32(tiff, at + offset, bigEndian: bigEndian) }
        func u64() -> UInt64 {
            let (a, b) = (UInt64(u32(0)), UInt64(u32(4)))
            return bigEndian ? a << 32 | b : b << 32 | a
        }
        func whole(_ value: Double) -> Int? {
            value.isFinite && value.rounded() == value && abs(value) < 1e15 ? Int(value) : nil
        }
        switch type {
        case 3: return Int(readUInt16(tiff, at, bigEndian: bigEndian))
        case 4, 13: return Int(u32(0))
        case 6: return Int(Int8(bitPattern: tiff[at]))
        case 8: return Int(Int16(bitPattern: readUInt16(tiff, at, bigEndian: bigEndian)))
        case 9: return Int(Int32(bitPattern: u32(0)))
        case 16: return Int(exactly: u64())
        case 5, 10:
            let (numerator, denominator) = type == 5 ? (Int(u32(0)), Int(u32(4)))
                                                     : (Int(Int32(bitPattern: u32(0))), Int(Int32(bitPattern: u32(4))))
            return denominator != 0 && numerator % denominator == 0 ? numerator / denominator : nil
        case 11: return whole(Double(Float(bitPattern: u32(0))))
        case 12: return whole(Double(bitPattern: u64()))
        default: return nil  // BYTE and UNDEFINED (bytes), ASCII (text)
        }
    }

    /// The digit after the first `tiff:Orientation="` or `tiff:Orientation>` (Pillow's
    /// `tiff:Orientation(="|>)([0-9])`), or nil.
    static func fromXMP(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
        let name = Array("tiff:Orientation".utf8)
        guard text.count > name.count + 1 else { return nil }
        var position = 0
        while position <= text.count - name.count - 2 {
            if text[position] == name[0], starts(text, position..<text.count, with: name) {
                let after = position + name.count
                if text[after] == UInt8(ascii: ">"), (48...57).contains(text[after + 1]) { return Int(text[after + 1]) - 48 }
                if text[after] == UInt8(ascii: "="), after + 2 < text.count, text[after + 1] == UInt8(ascii: "\""),
                   (48...57).contains(text[after + 2]) { return Int(text[after + 2]) - 48 }
            }
            position += 1
        }
        return nil
    }

    // MARK: - Bytes

    private static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    private static let exifHeader = Array("Exif\0\0".utf8)
    private static let xmpHeader = Array("http://ns.adobe.com/xap/1.0/\0".utf8)

    private static func starts(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, with prefix: [UInt8]) -> Bool {
        range.count >= prefix.count && prefix.indices.allSatisfy { bytes[range.lowerBound + $0] == prefix[$0] }
    }

    private static func readUInt16(_ bytes: UnsafeBufferPointer<UInt8>, _ at: Int, bigEndian: Bool) -> UInt16 {
        let (a, b) = (UInt16(bytes[at]), UInt16(bytes[at + 1]))
        return bigEndian ? a << 8 | b : b << 8 | a
    }

    private static func readUInt32(_ bytes: UnsafeBufferPointer<UInt8>, _ at: Int, bigEndian: Bool) -> UInt32 {
        let (a, b) = (UInt32(readUInt16(bytes, at, bigEndian: bigEndian)), UInt32(readUInt16(bytes, at + 2, bigEndian: bigEndian)))
        return bigEndian ? a << 16 | b : b << 16 | a
    }

    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The CRC-32 of PNG chunks (ISO 3309), over the chunk type and data.
    static func crc32(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = crcTable[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

extension RGBImage {
    /// The image as a photo viewer shows it for EXIF `orientation`, as Pillow's
    /// `ImageOps.exif_transpose` turns it: 2 mirrored left-right, 3 turned 180°, 4 mirrored
    /// top-bottom, 5 transposed (mirrored along the main diagonal), 6 turned 90° clockwise,
    /// 7 transversed (the other diagonal), 8 turned 90° counter-clockwise; any other value
    /// leaves it as it is. 5 to 8 swap width and height.
    public func applyingOrientation(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation), !isEmpty else { return self }
        let (w, h) = (width, height)
        let swaps = orientation >= 5
        let (outWidth, outHeight) = swaps ? (h, w) : (w, h)
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outHeight {
                    for x in 0..<outWidth {
                        // The stored pixel (sx, sy) shown at (x, y).
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                        case 4: (sx, sy) = (x, h - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, h - 1 - x)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                        default: (sx, sy) = (w - 1 - y, x)
                        }
                        let from = (sy * w + sx) * 3, to = (y * outWidth + x) * 3
                        dst[to] = src[from]
                        dst[to + 1] = src[from + 1]
                        dst[to + 2] = src[from + 2]
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}
