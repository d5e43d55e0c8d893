import ElucidateCore
import ElucidateIO
import Foundation

/// An 8-bit RGB image.
///
/// Layout: `pixels` holds `height` rows of `width` pixels, top row first, each pixel three
/// bytes R, G, B (row-major HWC, no padding), so the red sample of pixel `(x, y)` is
/// `pixels[(y * width + x) * 3]` and `pixels.count == width * height * 3`.
public struct RGBImage: Equatable, Hashable, Sendable {
    /// Columns: pixels per row.
    public let width: Int
    /// Rows, top first.
    public let height: Int
    /// Row-major HWC RGB8 samples, `width * height * 3` of them.
    public let pixels: [UInt8]

    /// An image from row-major HWC RGB8 samples; `pixels.count` must be `width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "negative image size \(width)×\(height)")
        precondition(pixels.count == width * height * 3,
                     "\(pixels.count) bytes do not make a \(width)×\(height) RGB8 image")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A `width`×`height` image filled with one colour.
    public init(width: Int, height: Int, red: UInt8, green: UInt8, blue: UInt8) {
        precondition(width >= 0 && height >= 0, "negative image size \(width)×\(height)")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) {
            pixels[i] = red
            pixels[i + 1] = green
            pixels[i + 2] = blue
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// True when the image has no pixels.
    public var isEmpty: Bool { width == 0 || height == 0 }

    /// The (R, G, B) samples of the pixel in column `x`, row `y` (bounds checked).
    public subscript(x: Int, y: Int) -> (red: UInt8, green: UInt8, blue: UInt8) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)×\(height)")
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// The `width`×`height` region whose top-left pixel is (`x`, `y`); the region must lie
    /// inside the image (like `PIL.Image.crop((x, y, x + width, y + height))` without padding).
    public func cropped(x: Int, y: Int, width: Int, height: Int) -> RGBImage {
        precondition(x >= 0 && y >= 0 && width >= 0 && height >= 0
                     && x + width <= self.width && y + height <= self.height,
                     "crop \(width)×\(height) at (\(x), \(y)) outside \(self.width)×\(self.height)")
        if x == 0 && y == 0 && width == self.width && height == self.height { return self }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let rowBytes = width * 3
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress, rowBytes > 0 else { return }
                for row in 0..<height {
                    (d + row * rowBytes).update(from: s + ((y + row) * self.width + x) * 3, count: rowBytes)
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}

extension RGBImage: CustomStringConvertible {
    public var description: String { "RGBImage(\(width)×\(height))" }
}
