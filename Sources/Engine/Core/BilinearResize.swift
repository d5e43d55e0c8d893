/// Bilinear resizing of one single-channel image as OpenCV's `INTER_LINEAR` does it (and
/// PyTorch's `align_corners=False`): half-pixel centres, source coordinate
/// `(d + 0.5) · in / out − 0.5`, clamped to the image (borders replicated), no antialiasing.
///
/// One implementation for the places that must match pytorch-grad-cam's `cv2.resize`: the CAM
/// family's final maps (Attribution) and layer maps drawn over the photo (Visualization).
package enum BilinearResize {
    /// `image` (`height × width`, row-major) resized to `newHeight × newWidth`.
    ///
    /// - Precondition: every size ≥ 1 and `image.count == height · width`.
    package static func halfPixel(_ image: [Float], height: Int, width: Int,
                                  toHeight newHeight: Int, toWidth newWidth: Int) -> [Float] {
        precondition(height >= 1 && width >= 1 && newHeight >= 1 && newWidth >= 1 && image.count == height * width,
                     "bilinear resize of \(height)×\(width) (\(image.count) values) to \(newHeight)×\(newWidth)")
        func axis(_ size: Int, _ out: Int) -> [(Int, Int, Float)] {
            let scale = Float(size) / Float(out)
            return (0..<out).map { d in
                var s = (Float(d) + 0.5) * scale - 0.5
                var i = Int(s.rounded(.down))
                s -= Float(i)
                if i < 0 { i = 0; s = 0 }
                if i >= size - 1 { i = size - 1; s = 0 }
                return (i, Swift.min(i + 1, size - 1), s)
            }
        }
        let ys = axis(height, newHeight), xs = axis(width, newWidth)
        var out = [Float](repeating: 0, count: newHeight * newWidth)
        for (oy, (y0, y1, fy)) in ys.enumerated() {
            for (ox, (x0, x1, fx)) in xs.enumerated() {
                let top = image[y0 * width + x0] * (1 - fx) + image[y0 * width + x1] * fx
                let bottom = image[y1 * width + x0] * (1 - fx) + image[y1 * width + x1] * fx
                out[oy * newWidth + ox] = top * (1 - fy) + bottom * fy
            }
        }
        return out
    }
}
