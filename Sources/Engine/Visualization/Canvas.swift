import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// An RGBA8 picture: `height` rows of `width` pixels, top row first, each pixel four bytes
/// R, G, B, A (row-major HWC, no padding), so pixel `(x, y)` starts at
/// `pixels[(y * width + x) * 4]`. Alpha is straight (not premultiplied); 255 is opaque.
///
/// All drawing is integer arithmetic, so a picture is the same bytes on every machine.
public struct Canvas: Equatable, Sendable {
    /// Columns, in pixels.
    public let width: Int
    /// Rows, in pixels.
    public let height: Int
    /// `width * height * 4` bytes (see the type's documentation).
    public var pixels: [UInt8]

    /// A canvas filled with one colour (opaque white by default).
    public init(width: Int, height: Int, red: UInt8 = 255, green: UInt8 = 255, blue: UInt8 = 255, alpha: UInt8 = 255) {
        precondition(width >= 0 && height >= 0, "negative canvas size \(width)×\(height)")
        self.width = width
        self.height = height
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        for i in stride(from: 0, to: pixels.count, by: 4) {
            pixels[i] = red
            pixels[i + 1] = green
            pixels[i + 2] = blue
            pixels[i + 3] = alpha
        }
        self.pixels = pixels
    }

    /// A canvas from RGBA8 bytes; `pixels.count` must be `width * height * 4`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 4,
                     "\(pixels.count) bytes do not make a \(width)×\(height) RGBA8 canvas")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An opaque canvas holding an RGB8 image.
    public init(_ image: RGBImage) {
        var pixels = [UInt8](repeating: 255, count: image.width * image.height * 4)
        image.pixels.withUnsafeBufferPointer { src in
            for i in 0..<(image.width * image.height) {
                pixels[i * 4] = src[i * 3]
                pixels[i * 4 + 1] = src[i * 3 + 1]
                pixels[i * 4 + 2] = src[i * 3 + 2]
            }
        }
        self.init(width: image.width, height: image.height, pixels: pixels)
    }

    /// True when every pixel is opaque (alpha 255): the picture can be stored as RGB.
    public var isOpaque: Bool {
        stride(from: 3, to: pixels.count, by: 4).allSatisfy { pixels[$0] == 255 }
    }

    /// The RGB8 bytes (alpha dropped), `width * height * 3`.
    public var rgbPixels: [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            out[i * 3] = pixels[i * 4]
            out[i * 3 + 1] = pixels[i * 4 + 1]
            out[i * 3 + 2] = pixels[i * 4 + 2]
        }
        return out
    }

    /// The (R, G, B, A) bytes of pixel (`x`, `y`) (bounds checked).
    public subscript(x: Int, y: Int) -> (red: UInt8, green: UInt8, blue: UInt8, alpha: UInt8) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)×\(height)")
        let i = (y * width + x) * 4
        return (pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3])
    }

    /// Sets pixel (`x`, `y`); pixels outside the canvas are ignored (clipping).
    @inline(__always)
    public mutating func set(x: Int, y: Int, red: UInt8, green: UInt8, blue: UInt8, alpha: UInt8 = 255) {
        guard x >= 0 && x < width && y >= 0 && y < height else { return }
        let i = (y * width + x) * 4
        pixels[i] = red
        pixels[i + 1] = green
        pixels[i + 2] = blue
        pixels[i + 3] = alpha
    }

    /// Fills the `w`×`h` rectangle at (`x`, `y`), clipped to the canvas.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int,
                              red: UInt8, green: UInt8, blue: UInt8, alpha: UInt8 = 255) {
        for row in Swift.max(y, 0)..<Swift.max(Swift.min(y + h, height), Swift.max(y, 0)) {
            for column in Swift.max(x, 0)..<Swift.max(Swift.min(x + w, width), Swift.max(x, 0)) {
                set(x: column, y: row, red: red, green: green, blue: blue, alpha: alpha)
            }
        }
    }

    /// A one-pixel outline just outside the `w`×`h` rectangle at (`x`, `y`) (like
    /// matplotlib's axes frame around an image).
    public mutating func frame(x: Int, y: Int, width w: Int, height h: Int, red: UInt8 = 0, green: UInt8 = 0, blue: UInt8 = 0) {
        fill(x: x - 1, y: y - 1, width: w + 2, height: 1, red: red, green: green, blue: blue)
        fill(x: x - 1, y: y + h, width: w + 2, height: 1, red: red, green: green, blue: blue)
        fill(x: x - 1, y: y, width: 1, height: h, red: red, green: green, blue: blue)
        fill(x: x + w, y: y, width: 1, height: h, red: red, green: green, blue: blue)
    }

    /// Copies `other` (all four channels, no blending) with its top-left pixel at (`x`, `y`),
    /// clipped to this canvas.
    public mutating func paste(_ other: Canvas, x: Int, y: Int) {
        for row in 0..<other.height where y + row >= 0 && y + row < height {
            for column in 0..<other.width where x + column >= 0 && x + column < width {
                let s = (row * other.width + column) * 4
                let d = ((y + row) * width + x + column) * 4
                pixels[d] = other.pixels[s]
                pixels[d + 1] = other.pixels[s + 1]
                pixels[d + 2] = other.pixels[s + 2]
                pixels[d + 3] = other.pixels[s + 3]
            }
        }
    }

    /// Blends a colour with opacity `alpha` (0…255) over an opaque destination pixel the
    /// way matplotlib's Agg backend does (`fixed_blender_rgba_plain` with full cover), so a
    /// blended heat map has matplotlib's exact bytes:
    /// `((src·256 − dst·255)·α + dst·255·256) / ((α + 255)·256 − α·255)`, integer division.
    @inline(__always)
    public static func blendOverOpaque(source: UInt8, destination: UInt8, alpha: UInt8) -> UInt8 {
        if alpha == 0 { return destination }
        let a = Int(alpha)
        let r = Int(destination) * 255
        let denominator = ((a + 255) << 8) - a * 255
        return UInt8(((((Int(source) << 8) - r) * a) + (r << 8)) / denominator)
    }

    /// How `scaled(by:resampling:)` fills the new pixels.
    public enum Resampling: String, CaseIterable, Sendable {
        /// Each pixel becomes a K×K block: sharp, shows the map's real resolution.
        case nearest
        /// Bilinear interpolation of the drawn colours (and alpha), pixel centres at
        /// half-integers, edges clamped; exact integer arithmetic, rounded half up.
        case bilinear
    }

    /// This canvas enlarged `factor` times in each direction (`factor` ≥ 1).
    public func scaled(by factor: Int, resampling: Resampling) -> Canvas {
        precondition(factor >= 1, "scale factor \(factor)")
        if factor == 1 || width == 0 || height == 0 { return self }
        let outWidth = width * factor, outHeight = height * factor
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 4)
        switch resampling {
        case .nearest:
            pixels.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<outHeight {
                        let sy = y / factor
                        for x in 0..<outWidth {
                            let s = (sy * width + x / factor) * 4
                            let d = (y * outWidth + x) * 4
                            dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]; dst[d + 3] = src[s + 3]
                        }
                    }
                }
            }
        case .bilinear:
            // Output pixel o's centre is at input coordinate (o + 0.5) / K − 0.5
            // = (2o + 1 − K) / 2K: index floor(n / 2K), weight of the next pixel (n mod 2K) / 2K.
            let d = 2 * factor
            func taps(_ count: Int, _ size: Int) -> [(Int, Int, Int)] {  // (i0, i1, w1) per output
                (0..<count).map { o in
                    let n = 2 * o + 1 - factor
                    let i0 = n >= 0 ? n / d : -((-n + d - 1) / d)
                    let w1 = n - i0 * d
                    return (Swift.min(Swift.max(i0, 0), size - 1), Swift.min(Swift.max(i0 + 1, 0), size - 1), w1)
                }
            }
            let xs = taps(outWidth, width), ys = taps(outHeight, height)
            let total = d * d
            pixels.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<outHeight {
                        let (y0, y1, wy1) = ys[y]
                        let wy0 = d - wy1
                        for x in 0..<outWidth {
                            let (x0, x1, wx1) = xs[x]
                            let wx0 = d - wx1
                            let p00 = (y0 * width + x0) * 4, p01 = (y0 * width + x1) * 4
                            let p10 = (y1 * width + x0) * 4, p11 = (y1 * width + x1) * 4
                            let o = (y * outWidth + x) * 4
                            for c in 0..<4 {
                                let v = wy0 * (wx0 * Int(src[p00 + c]) + wx1 * Int(src[p01 + c]))
                                    + wy1 * (wx0 * Int(src[p10 + c]) + wx1 * Int(src[p11 + c]))
                                dst[o + c] = UInt8((v + total / 2) / total)
                            }
                        }
                    }
                }
            }
        }
        return Canvas(width: outWidth, height: outHeight, pixels: out)
    }
}
