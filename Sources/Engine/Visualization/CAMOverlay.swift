import ElucidateCore
import ElucidateImage

/// pytorch-grad-cam 1.5.7's `show_cam_on_image(img, mask, use_rgb=True)` (image weight 0.5,
/// `cv2.COLORMAP_JET`): the heat map `JET[uint8(255 · mask)] / 255`, blended
/// `0.5 · heat + 0.5 · img`, divided by the blend's maximum and truncated to `uint8(255 · x)`.
public enum CAMOverlay {
    /// OpenCV's `COLORMAP_JET` as RGB: entries `3v ..< 3v + 3` are the colour of value v
    /// (0…255), as `cv2.applyColorMap` returns it, converted from BGR.
    public static let openCVJet: [UInt8] = [
        0, 0, 128, 0, 0, 132, 0, 0, 136, 0, 0, 140, 0, 0, 144, 0, 0, 148, 0, 0, 152, 0, 0, 156,
        0, 0, 160, 0, 0, 164, 0, 0, 168, 0, 0, 172, 0, 0, 176, 0, 0, 180, 0, 0, 184, 0, 0, 188,
        0, 0, 192, 0, 0, 196, 0, 0, 200, 0, 0, 204, 0, 0, 208, 0, 0, 212, 0, 0, 216, 0, 0, 220,
        0, 0, 224, 0, 0, 228, 0, 0, 232, 0, 0, 236, 0, 0, 240, 0, 0, 244, 0, 0, 248, 0, 0, 252,
        0, 0, 255, 0, 4, 255, 0, 8, 255, 0, 12, 255, 0, 16, 255, 0, 20, 255, 0, 24, 255, 0, 28, 255,
        0, 32, 255, 0, 36, 255, 0, 40, 255, 0, 44, 255, 0, 48, 255, 0, 52, 255, 0, 56, 255, 0, 60, 255,
        0, 64, 255, 0, 68, 255, 0, 72, 255, 0, 76, 255, 0, 80, 255, 0, 84, 255, 0, 88, 255, 0, 92, 255,
        0, 96, 255, 0, 100, 255, 0, 104, 255, 0, 108, 255, 0, 112, 255, 0, 116, 255, 0, 120, 255, 0, 124, 255,
        0, 128, 255, 0, 132, 255, 0, 136, 255, 0, 140, 255, 0, 144, 255, 0, 148, 255, 0, 152, 255, 0, 156, 255,
        0, 160, 255, 0, 164, 255, 0, 168, 255, 0, 172, 255, 0, 176, 255, 0, 180, 255, 0, 184, 255, 0, 188, 255,
        0, 192, 255, 0, 196, 255, 0, 200, 255, 0, 204, 255, 0, 208, 255, 0, 212, 255, 0, 216, 255, 0, 220, 255,
        0, 224, 255, 0, 228, 255, 0, 232, 255, 0, 236, 255, 0, 240, 255, 0, 244, 255, 0, 248, 255, 0, 252, 255,
        2, 255, 254, 6, 255, 250, 10, 255, 246, 14, 255, 242, 18, 255, 238, 22, 255, 234, 26, 255, 230, 30, 255, 226,
        34, 255, 222, 38, 255, 218, 42, 255, 214, 46, 255, 210, 50, 255, 206, 54, 255, 202, 58, 255, 198, 62, 255, 194,
        66, 255, 190, 70, 255, 186, 74, 255, 182, 78, 255, 178, 82, 255, 174, 86, 255, 170, 90, 255, 166, 94, 255, 162,
        98, 255, 158, 102, 255, 154, 106, 255, 150, 110, 255, 146, 114, 255, 142, 118, 255, 138, 122, 255, 134, 126, 255, 130,
        130, 255, 126, 134, 255, 122, 138, 255, 118, 142, 255, 114, 146, 255, 110, 150, 255, 106, 154, 255, 102, 158, 255, 98,
        162, 255, 94, 166, 255, 90, 170, 255, 86, 174, 255, 82, 178, 255, 78, 182, 255, 74, 186, 255, 70, 190, 255, 66,
        194, 255, 62, 198, 255, 58, 202, 255, 54, 206, 255, 50, 210, 255, 46, 214, 255, 42, 218, 255, 38, 222, 255, 34,
        226, 255, 30, 230, 255, 26, 234, 255, 22, 238, 255, 18, 242, 255, 14, 246, 255, 10, 250, 255, 6, 254, 255, 1,
        255, 252, 0, 255, 248, 0, 255, 244, 0, 255, 240, 0, 255, 236, 0, 255, 232, 0, 255, 228, 0, 255, 224, 0,
        255, 220, 0, 255, 216, 0, 255, 212, 0, 255, 208, 0, 255, 204, 0, 255, 200, 0, 255, 196, 0, 255, 192, 0,
        255, 188, 0, 255, 184, 0, 255, 180, 0, 255, 176, 0, 255, 172, 0, 255, 168, 0, 255, 164, 0, 255, 160, 0,
        255, 156, 0, 255, 152, 0, 255, 148, 0, 255, 144, 0, 255, 140, 0, 255, 136, 0, 255, 132, 0, 255, 128, 0,
        255, 124, 0, 255, 120, 0, 255, 116, 0, 255, 112, 0, 255, 108, 0, 255, 104, 0, 255, 100, 0, 255, 96, 0,
        255, 92, 0, 255, 88, 0, 255, 84, 0, 255, 80, 0, 255, 76, 0, 255, 72, 0, 255, 68, 0, 255, 64, 0,
        255, 60, 0, 255, 56, 0, 255, 52, 0, 255, 48, 0, 255, 44, 0, 255, 40, 0, 255, 36, 0, 255, 32, 0,
        255, 28, 0, 255, 24, 0, 255, 20, 0, 255, 16, 0, 255, 12, 0, 255, 8, 0, 255, 4, 0, 255, 0, 0,
        252, 0, 0, 248, 0, 0, 244, 0, 0, 240, 0, 0, 236, 0, 0, 232, 0, 0, 228, 0, 0, 224, 0, 0,
        220, 0, 0, 216, 0, 0, 212, 0, 0, 208, 0, 0, 204, 0, 0, 200, 0, 0, 196, 0, 0, 192, 0, 0,
        188, 0, 0, 184, 0, 0, 180, 0, 0, 176, 0, 0, 172, 0, 0, 168, 0, 0, 164, 0, 0, 160, 0, 0,
        156, 0, 0, 152, 0, 0, 148, 0, 0, 144, 0, 0, 140, 0, 0, 136, 0, 0, 132, 0, 0, 128, 0, 0
    ]

    /// The overlay of `mask` (`height × width` values in [0, 1], row-major, e.g. a final CAM
    /// from `CAMPostprocessing.final`) on `image` (`height × width × 3` RGB floats in [0, 1],
    /// row-major), in float32 as numpy computes it.
    public static func showCAMOnImage(image: [Float], mask: [Float], width: Int, height: Int) -> RGBImage {
        precondition(mask.count == width * height && image.count == 3 * width * height, "image and mask sizes differ")
        var blend = [Float](repeating: 0, count: image.count)
        for i in 0..<mask.count {
            let scaled = 255 * mask[i]
            let level = scaled.isNaN ? 0 : Int(min(max(scaled, 0), 255))  // np.uint8 truncates
            for k in 0..<3 {
                let heat = Float(openCVJet[3 * level + k]) / 255
                blend[3 * i + k] = 0.5 * heat + 0.5 * image[3 * i + k]
            }
        }
        let top = blend.max() ?? 1
        let pixels = blend.map { value -> UInt8 in
            let scaled = 255 * (value / top)
            return UInt8(min(max(scaled, 0), 255))
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// The overlay of `mask` on the RGB8 `photo` (read as `pixel / 255`, as an image loaded for
    /// pytorch-grad-cam is scaled), the same size.
    public static func showCAMOnImage(photo: RGBImage, mask: [Float]) -> RGBImage {
        showCAMOnImage(image: photo.pixels.map { Float($0) / 255 }, mask: mask, width: photo.width, height: photo.height)
    }
}

extension CAMOverlay {
    /// pytorch-grad-cam's scaling of a map before the overlay: `max(x, 0)`, then `x − min`,
    /// `/ (1e-7 + max)`. On a raw CAM bilinearly upsampled to the photo this is its final map
    /// up to the 1e-7 guards (min-max scaling is affine, so it commutes with the interpolation).
    public static func scaledMask(_ values: [Float]) -> [Float] {
        var x = values.map { max($0, 0) }
        let low = x.min() ?? 0
        for i in x.indices { x[i] -= low }
        let scale = 1e-7 + (x.max() ?? 0)
        return x.map { $0 / scale }
    }
}

extension AttributionMap {
    /// The map bilinearly resized to `width × height` as OpenCV's INTER_LINEAR (and PyTorch's
    /// `align_corners=False`) does: half-pixel centres, borders replicated. Used to draw a
    /// layer's map (N,C,h,w), channels summed first, over the photo.
    public func resized(width newWidth: Int, height newHeight: Int) -> AttributionMap {
        let out = BilinearResize.halfPixel(values, height: height, width: width, toHeight: newHeight, toWidth: newWidth)
        return AttributionMap(width: newWidth, height: newHeight, values: out)
    }
}
