import CImageCodecs
import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// Writes canvases as PNG files through libpng (the C layer in `CImageCodecs`).
///
/// A canvas whose pixels are all opaque is stored as 8-bit RGB, any other as 8-bit RGBA
/// (straight alpha). Files are written atomically: the bytes go to a temporary file in the
/// destination folder, which is then renamed, so no reader ever sees a partial picture.
public enum PNGWriter {
    /// The PNG bytes of `canvas`.
    ///
    /// - Throws: `.invalidArgument` for an empty or too large canvas (more than
    ///   `ImageDecoder.maximumSide` pixels a side or `ImageDecoder.maximumPixelCount`
    ///   pixels), `.internalFailure` if libpng fails.
    public static func encode(_ canvas: Canvas) throws(ElucidateError) -> Data {
        guard canvas.width > 0 && canvas.height > 0 else {
            throw ElucidateError(.invalidArgument, "cannot write an empty \(canvas.width)×\(canvas.height) picture")
        }
        let opaque = canvas.isOpaque
        let bytes = opaque ? canvas.rgbPixels : canvas.pixels
        var message = [CChar](repeating: 0, count: 256)
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = bytes.withUnsafeBufferPointer { pixels in
            message.withUnsafeMutableBufferPointer { text in
                eic_png_encode(pixels.baseAddress, Int32(canvas.width), Int32(canvas.height), opaque ? 3 : 4,
                               &output, &size, text.baseAddress, text.count)
            }
        }
        defer { eic_free(output) }
        guard status == EIC_OK, let output else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            switch status {
            case EIC_TOO_LARGE, EIC_BAD_ARGUMENT:
                throw ElucidateError(.invalidArgument, text)
            default:
                throw ElucidateError(.internalFailure, "PNG encoder: \(text.isEmpty ? "failed" : text)")
            }
        }
        return Data(bytes: output, count: size)
    }

    /// Writes `canvas` to `url` as a PNG, atomically; refuses to overwrite any of
    /// `protectedInputs` (the command's own inputs). Errors name `url`'s path.
    public static func write(_ canvas: Canvas, to url: URL, protectedInputs: [URL] = []) throws(ElucidateError) {
        do {
            try AtomicFile.write(encode(canvas), to: url, protectedInputs: protectedInputs)
        } catch {
            throw error.at(url.path)
        }
    }

    /// Reads a PNG back as a canvas with its alpha channel (opaque where the file has
    /// none), e.g. to compare a written picture with a committed one. Errors name `url`.
    public static func read(_ url: URL) throws(ElucidateError) -> Canvas {
        let data = try readFileBytes(url)
        var message = [CChar](repeating: 0, count: 256)
        var output: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        let status = data.withUnsafeBytes { raw in
            message.withUnsafeMutableBufferPointer { text in
                eic_png_decode_rgba8(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, &width, &height,
                                     &output, text.baseAddress, text.count)
            }
        }
        defer { eic_free(output) }
        guard status == EIC_OK, let output else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ElucidateError(.invalidFormat, text.isEmpty ? "cannot read the PNG" : text, path: url.path)
        }
        let count = Int(width) * Int(height) * 4
        return Canvas(width: Int(width), height: Int(height),
                      pixels: Array(UnsafeBufferPointer(start: output, count: count)))
    }
}
