/// ElucidateImage: images in and out of tensors. Decoding JPEG and PNG (CImageCodecs), EXIF
/// orientation, `RGBImage`, resizing, the preprocessing presets (torchvision, fastai, …) and
/// superpixels. It may depend on ElucidateCore, ElucidateIO and CImageCodecs.

import CImageCodecs
import ElucidateCore
import ElucidateIO
import Foundation

/// Decodes JPEG and PNG files to `RGBImage` (RGB8, row-major HWC).
///
/// Every PNG colour type and bit depth becomes RGB8 the way Pillow's `convert("RGB")`
/// does for 8-bit data: gray is replicated, palettes expanded, alpha and tRNS dropped
/// without compositing; 16-bit samples keep their high byte. JPEGs are decoded with
/// libjpeg-turbo's accurate IDCT and fancy upsampling, like Pillow. EXIF orientation is not
/// applied by default (`ExifRule.ignore`: neither Pillow's `open` nor torchvision applies it);
/// `exif: .apply` turns the image as Pillow's `ImageOps.exif_transpose` does.
public enum ImageDecoder {
    /// The formats `decode` accepts.
    public enum Format: String, Sendable {
        /// JPEG, decoded by libjpeg-turbo (`FF D8 FF`).
        case jpeg = "JPEG"
        /// PNG, any colour type and bit depth, decoded by libpng.
        case png = "PNG"
    }

    /// Largest accepted width or height, in pixels.
    public static let maximumSide = Int(EIC_MAX_SIDE)
    /// Largest accepted `width * height`.
    public static let maximumPixelCount = Int(EIC_MAX_PIXELS)

    /// The format announced by the first bytes of `data`, or nil for anything else.
    public static func sniff(_ data: Data) -> Format? {
        let head = [UInt8](data.prefix(8))
        if head.count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF { return .jpeg }
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }

    /// Decodes a whole JPEG or PNG file held in memory. Errors carry no path (see `load`).
    ///
    /// - Throws: `.invalidFormat` for empty data, data that is neither JPEG nor PNG,
    ///   truncated or corrupt files; `.unsupported` for recognised but unsupported
    ///   images (other formats such as GIF, CMYK JPEG, more than
    ///   `maximumSide`/`maximumPixelCount` pixels).
    public static func decode(_ data: Data) throws(ElucidateError) -> RGBImage {
        try decodeWithOrientation(data, exif: .ignore).image
    }

    /// `decode(_:)`, turned by the image's EXIF orientation when `exif` is `.apply`.
    public static func decode(_ data: Data, exif: ExifRule) throws(ElucidateError) -> RGBImage {
        try decodeWithOrientation(data, exif: exif).image
    }

    /// Decodes a JPEG or PNG and reads the orientation it records (`ExifOrientation.read`, nil
    /// for none); with `exif: .apply` the image is turned by it. Errors carry no path.
    public static func decodeWithOrientation(_ data: Data, exif: ExifRule) throws(ElucidateError)
        -> (image: RGBImage, orientation: Int?) {
        let stored = try decodeStored(data)
        let orientation = ExifOrientation.read(data)
        guard exif == .apply, let orientation else { return (stored, orientation) }
        return (stored.applyingOrientation(orientation), orientation)
    }

    /// Reads and decodes a JPEG or PNG file and the orientation it records; every error names
    /// `url`'s path.
    public static func loadWithOrientation(_ url: URL, exif: ExifRule) throws(ElucidateError) -> (image: RGBImage, orientation: Int?) {
        let data = try readFileBytes(url)
        do {
            return try decodeWithOrientation(data, exif: exif)
        } catch {
            throw error.at(url.path)
        }
    }

    private static func decodeStored(_ data: Data) throws(ElucidateError) -> RGBImage {
        guard !data.isEmpty else {
            throw ElucidateError(.invalidFormat, "empty file: not a JPEG or PNG image")
        }
        guard let format = sniff(data) else {
            let head = [UInt8](data.prefix(8))
            for (magic, name) in [([UInt8]([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "PNG"), ([0xFF, 0xD8, 0xFF], "JPEG")]
            where head.count < magic.count && Array(magic.prefix(head.count)) == head {
                throw ElucidateError(.invalidFormat, "the file ends early (truncated \(name)): only \(head.count) bytes")
            }
            if let other = otherFormatName(data) {
                throw ElucidateError(.unsupported, "not a JPEG or PNG image (looks like \(other), which is not supported)")
            }
            throw ElucidateError(.invalidFormat, "not a JPEG or PNG image")
        }
        let result: Result<RGBImage, ElucidateError> = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            return decode(bytes, format: format)
        }
        return try result.get()
    }

    /// Reads and decodes a JPEG or PNG file; every error names `url`'s path.
    public static func load(_ url: URL) throws(ElucidateError) -> RGBImage {
        try loadWithOrientation(url, exif: .ignore).image
    }

    /// `load(_:)`, turned by the image's EXIF orientation when `exif` is `.apply`.
    public static func load(_ url: URL, exif: ExifRule) throws(ElucidateError) -> RGBImage {
        try loadWithOrientation(url, exif: exif).image
    }

    // MARK: - Private

    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>, format: Format) -> Result<RGBImage, ElucidateError> {
        let base = bytes.baseAddress
        let size = bytes.count
        var message = [CChar](repeating: 0, count: 512)
        var width: Int32 = 0
        var height: Int32 = 0
        let header = message.withUnsafeMutableBufferPointer { text in
            switch format {
            case .jpeg: eic_jpeg_header(base, size, &width, &height, text.baseAddress, text.count)
            case .png: eic_png_header(base, size, &width, &height, text.baseAddress, text.count)
            }
        }
        if header != EIC_OK { return .failure(error(header, message, format: format)) }

        let count = Int(width) * Int(height) * 3
        var status = EIC_OK
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            status = message.withUnsafeMutableBufferPointer { text in
                switch format {
                case .jpeg: eic_jpeg_decode_rgb8(base, size, buffer.baseAddress, count, text.baseAddress, text.count)
                case .png: eic_png_decode_rgb8(base, size, buffer.baseAddress, count, text.baseAddress, text.count)
                }
            }
            if status != EIC_OK { buffer.initialize(repeating: 0) }  // never expose uninitialised bytes
            initialized = count
        }
        if status != EIC_OK { return .failure(error(status, message, format: format)) }
        return .success(RGBImage(width: Int(width), height: Int(height), pixels: pixels))
    }

    private static func error(_ status: eic_status, _ message: [CChar], format: Format) -> ElucidateError {
        let text = message.withUnsafeBufferPointer { buffer -> String in
            let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            return String(decoding: bytes, as: UTF8.self)
        }
        let detail = text.isEmpty ? "cannot decode the \(format.rawValue) image" : text
        switch status {
        case EIC_TRUNCATED:
            return ElucidateError(.invalidFormat, detail.contains("truncated") ? detail : "truncated \(format.rawValue): \(detail)")
        case EIC_INVALID:
            return ElucidateError(.invalidFormat, detail.contains(format.rawValue) ? detail : "invalid \(format.rawValue): \(detail)")
        case EIC_UNSUPPORTED, EIC_TOO_LARGE:
            return ElucidateError(.unsupported, detail)
        default:
            return ElucidateError(.internalFailure, "\(format.rawValue) decoder: \(detail)")
        }
    }

    /// A name for common image formats we do not decode, for a more helpful message.
    private static func otherFormatName(_ data: Data) -> String? {
        let head = [UInt8](data.prefix(12))
        func starts(_ magic: [UInt8]) -> Bool { head.count >= magic.count && Array(head.prefix(magic.count)) == magic }
        if starts(Array("GIF8".utf8)) { return "GIF" }
        if starts(Array("BM".utf8)) && head.count >= 10 && head[6..<10].allSatisfy({ $0 == 0 }) { return "BMP" }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if starts(Array("RIFF".utf8)) && head.count >= 12 && Array(head[8..<12]) == Array("WEBP".utf8) { return "WebP" }
        if head.count >= 12 && Array(head[4..<8]) == Array("ftyp".utf8) { return "HEIF/AVIF" }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50]) || starts([0xFF, 0x4F, 0xFF, 0x51]) { return "JPEG 2000" }
        return nil
    }
}
