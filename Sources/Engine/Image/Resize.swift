import ElucidateCore
import ElucidateIO
import Foundation

/// Pillow-compatible antialiased bilinear resampling of RGB8 images.
///
/// Reproduces `PIL.Image.resize(size, Image.BILINEAR)` (Pillow ≥ 7, `reducing_gap=None`)
/// (Pillow 13) bit for bit: a triangle filter whose support grows with the downscaling
/// factor, coefficients computed in double precision and normalised per output pixel,
/// then converted to 22-bit fixed point; two separable passes, each
/// rounding and clipping to 8 bits. A pass whose size does not change is skipped, and
/// the vertical pass goes first when Pillow 13 would do so (see
/// `pillowResizesHorizontallyFirst`).
extension RGBImage {
    /// This image resized to `width`×`height` (both ≥ 1) like Pillow's bilinear `resize`.
    public func resizedBilinear(width: Int, height: Int) -> RGBImage {
        resizedBilinear(width: width, height: height, cropX: 0, cropY: 0, cropWidth: width, cropHeight: height)
    }

    /// The `cropWidth`×`cropHeight` region at (`cropX`, `cropY`) of this image resized to
    /// `width`×`height`: equal to `resizedBilinear(width:height:).cropped(...)`, but only
    /// the pixels inside the region are computed.
    public func resizedBilinear(
        width: Int, height: Int, cropX: Int, cropY: Int, cropWidth: Int, cropHeight: Int
    ) -> RGBImage {
        precondition(width >= 1 && height >= 1, "resize target \(width)×\(height) is empty")
        precondition(self.width >= 1 && self.height >= 1, "cannot resize an empty image")
        precondition(cropX >= 0 && cropY >= 0 && cropWidth >= 0 && cropHeight >= 0
                     && cropX + cropWidth <= width && cropY + cropHeight <= height,
                     "region \(cropWidth)×\(cropHeight) at (\(cropX), \(cropY)) outside \(width)×\(height)")
        let needHorizontal = width != self.width
        let needVertical = height != self.height
        if !needHorizontal && !needVertical {
            return cropped(x: cropX, y: cropY, width: cropWidth, height: cropHeight)
        }
        if cropWidth == 0 || cropHeight == 0 {
            return RGBImage(width: cropWidth, height: cropHeight, pixels: [])
        }
        let columns = cropX..<(cropX + cropWidth)
        let rows = cropY..<(cropY + cropHeight)

        if needHorizontal && !needVertical {
            let horizontal = BilinearCoefficients(inSize: self.width, outSize: width, outputs: columns)
            let out = horizontal.resampleRows(pixels, width: self.width, rows: rows, inputOffset: 0)
            return RGBImage(width: cropWidth, height: cropHeight, pixels: out)
        }
        let vertical = BilinearCoefficients(inSize: self.height, outSize: height, outputs: rows)
        if !needHorizontal {
            let out = vertical.resampleColumns(pixels, width: self.width, firstRow: 0, columns: columns)
            return RGBImage(width: cropWidth, height: cropHeight, pixels: out)
        }
        let horizontal = BilinearCoefficients(inSize: self.width, outSize: width, outputs: columns)
        if Self.pillowResizesHorizontallyFirst(from: (self.width, self.height), to: (width, height)) {
            // Horizontal pass over the source rows the vertical pass reads, then vertical.
            let used = vertical.firstInput..<vertical.endInput
            let intermediate = horizontal.resampleRows(pixels, width: self.width, rows: used, inputOffset: 0)
            let out = vertical.resampleColumns(intermediate, width: cropWidth, firstRow: used.lowerBound,
                                               columns: 0..<cropWidth)
            return RGBImage(width: cropWidth, height: cropHeight, pixels: out)
        } else {
            // Vertical pass over the source columns the horizontal pass reads, then horizontal.
            let used = horizontal.firstInput..<horizontal.endInput
            let intermediate = vertical.resampleColumns(pixels, width: self.width, firstRow: 0, columns: used)
            let out = horizontal.resampleRows(intermediate, width: used.count, rows: 0..<cropHeight,
                                              inputOffset: used.lowerBound)
            return RGBImage(width: cropWidth, height: cropHeight, pixels: out)
        }
    }

    /// Pillow ≥ 13 runs the vertical pass first when the height shrinks by more than
    /// twice as many pixels as the width does (`ImagingResampleInner`); earlier versions
    /// always ran the horizontal pass first. The order changes rounding (by at most one
    /// level), so it is reproduced for bit-exact parity with the pinned Pillow.
    static func pillowResizesHorizontallyFirst(from source: (width: Int, height: Int), to target: (width: Int, height: Int)) -> Bool {
        let heightReduction = source.height - target.height
        let widthReduction = source.width - target.width
        return !(heightReduction > 0 && heightReduction > widthReduction * 2)
    }
}

/// Pillow's fixed-point filter coefficients for some outputs of one resampling pass
/// (`precompute_coeffs` + `normalize_coeffs_8bpc` in libImaging/Resample.c).
struct BilinearCoefficients {
    static let precisionBits = 22

    /// The outputs these coefficients are for.
    let outputs: Range<Int>
    /// Coefficients per output (padded with zeros).
    let kernelSize: Int
    /// For output `outputs.lowerBound + i`: first input index and number of inputs used.
    let firstInputs: [Int]
    let inputCounts: [Int]
    /// `outputs.count * kernelSize` fixed-point weights, `1 << 22` meaning 1.0.
    let weights: [Int32]

    init(inSize: Int, outSize: Int, outputs: Range<Int>) {
        precondition(inSize >= 1 && outSize >= 1)
        let support = 1.0  // bilinear (triangle) filter
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let scaledSupport = support * filterScale
        let kernelSize = Int(scaledSupport.rounded(.up)) * 2 + 1
        let inverseFilterScale = 1.0 / filterScale
        let one = Double(1 << Self.precisionBits)

        var firstInputs = [Int](repeating: 0, count: outputs.count)
        var inputCounts = [Int](repeating: 0, count: outputs.count)
        var weights = [Int32](repeating: 0, count: outputs.count * kernelSize)
        var k = [Double](repeating: 0, count: kernelSize)
        for (i, xx) in outputs.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            // Conversions truncate toward zero, as C's (int) casts do.
            let xmin = max(Int(center - scaledSupport + 0.5), 0)
            let xmax = min(Int(center + scaledSupport + 0.5), inSize) - xmin
            precondition(xmax >= 0 && xmax <= kernelSize, "bad resampling window")
            var total = 0.0
            for x in 0..<xmax {
                let w = Self.triangle((Double(x + xmin) - center + 0.5) * inverseFilterScale)
                k[x] = w
                total += w
            }
            for x in 0..<xmax where total != 0 { k[x] /= total }
            for x in 0..<xmax {
                let scaled = k[x] * one
                weights[i * kernelSize + x] = Int32(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled)
            }
            firstInputs[i] = xmin
            inputCounts[i] = xmax
        }
        self.outputs = outputs
        self.kernelSize = kernelSize
        self.firstInputs = firstInputs
        self.inputCounts = inputCounts
        self.weights = weights
    }

    private static func triangle(_ x: Double) -> Double {
        let a = x < 0 ? -x : x
        return a < 1 ? 1 - a : 0
    }

    /// First input index any output reads.
    var firstInput: Int { firstInputs.first ?? 0 }
    /// One past the last input index any output reads.
    var endInput: Int { zip(firstInputs, inputCounts).map { $0 + $1 }.max() ?? 0 }

    @inline(__always)
    private static func clip8(_ accumulator: Int32) -> UInt8 {
        let v = accumulator >> Int32(precisionBits)
        return v < 0 ? 0 : (v > 255 ? 255 : UInt8(truncatingIfNeeded: v))
    }

    /// Horizontal pass over `rows` of an RGB8 HWC image `width` pixels wide whose first
    /// column is input index `inputOffset`; returns `rows.count` rows of `outputs.count`
    /// pixels (RGB8 HWC).
    func resampleRows(_ pixels: [UInt8], width: Int, rows: Range<Int>, inputOffset: Int) -> [UInt8] {
        let outWidth = outputs.count
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
        let half = Int32(1 << (Self.precisionBits - 1))
        pixels.withUnsafeBufferPointer { src in
            weights.withUnsafeBufferPointer { kk in
                firstInputs.withUnsafeBufferPointer { mins in
                    inputCounts.withUnsafeBufferPointer { counts in
                        out.withUnsafeMutableBufferPointer { dst in
                            for (r, y) in rows.enumerated() {
                                let srcRow = y * width * 3
                                let dstRow = r * outWidth * 3
                                for xx in 0..<outWidth {
                                    let k = xx * kernelSize
                                    let base = srcRow + (mins[xx] - inputOffset) * 3
                                    var s0 = half, s1 = half, s2 = half
                                    for x in 0..<counts[xx] {
                                        let w = kk[k + x]
                                        let p = base + x * 3
                                        s0 = s0 &+ Int32(src[p]) &* w
                                        s1 = s1 &+ Int32(src[p + 1]) &* w
                                        s2 = s2 &+ Int32(src[p + 2]) &* w
                                    }
                                    let d = dstRow + xx * 3
                                    dst[d] = Self.clip8(s0)
                                    dst[d + 1] = Self.clip8(s1)
                                    dst[d + 2] = Self.clip8(s2)
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Vertical pass: `pixels` holds rows `firstRow...` of an RGB8 HWC image `width` pixels
    /// wide; returns `outputs.count` rows of the given `columns` (RGB8 HWC).
    func resampleColumns(_ pixels: [UInt8], width: Int, firstRow: Int, columns: Range<Int>) -> [UInt8] {
        let outWidth = columns.count
        var out = [UInt8](repeating: 0, count: outputs.count * outWidth * 3)
        let half = Int32(1 << (Self.precisionBits - 1))
        let stride = width * 3
        pixels.withUnsafeBufferPointer { src in
            weights.withUnsafeBufferPointer { kk in
                out.withUnsafeMutableBufferPointer { dst in
                    for yy in 0..<outputs.count {
                        let k = yy * kernelSize
                        let top = (firstInputs[yy] - firstRow) * stride
                        let count = inputCounts[yy]
                        for (c, xx) in columns.enumerated() {
                            var s0 = half, s1 = half, s2 = half
                            var p = top + xx * 3
                            for y in 0..<count {
                                let w = kk[k + y]
                                s0 = s0 &+ Int32(src[p]) &* w
                                s1 = s1 &+ Int32(src[p + 1]) &* w
                                s2 = s2 &+ Int32(src[p + 2]) &* w
                                p += stride
                            }
                            let d = (yy * outWidth + c) * 3
                            dst[d] = Self.clip8(s0)
                            dst[d + 1] = Self.clip8(s1)
                            dst[d + 2] = Self.clip8(s2)
                        }
                    }
                }
            }
        }
        return out
    }
}
