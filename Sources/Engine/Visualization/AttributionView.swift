/// ElucidateVisualization: attributions drawn as Captum draws them. Normalization, colormaps,
/// the views (heat map, blended, masked, alpha scaling), figures with titles and colour bar,
/// PNG output. It may depend on ElucidateCore, ElucidateIO, ElucidateImage and CImageCodecs
/// (not on models or attribution methods: it draws a tensor of attributions).

import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// Draws one view (a `VisualizationMethod` of a normalised map) at the map's resolution,
/// composed the way Captum's `visualize_image_attr` composes it with matplotlib:
///
/// - heat map: each value through the colormap over the sign's range (`vmin`, `vmax`).
/// - blended heat map: the photo's channel mean `(r + g + b) / 3`, contrast-stretched to
///   its own min…max through matplotlib's `gray` map, under the heat map drawn with
///   opacity `trunc(255 · alphaOverlay)` and blended as matplotlib's Agg backend blends.
/// - original image: the photo's pixels.
/// - masked image: each photo sample times the map value, truncated (`astype(int)`).
/// - alpha scaling: the photo with alpha `trunc(255 · value)`: an RGBA view.
///
/// Sizes: the map and the photo must both be `width`×`height`; the result is a canvas of
/// that size (opaque except for alpha scaling).
public enum AttributionView {
    /// The view of `normalized` (already normalised for `panel.sign`).
    ///
    /// - Throws: `.invalidArgument` when the method needs a photo and there is none, when
    ///   the photo's size differs from the map's, or for sign `all` with masked-image or
    ///   alpha-scaling.
    public static func draw(_ panel: VisualizationPanel, normalized: AttributionMap, photo: RGBImage?,
                            colormap: Colormap, alphaOverlay: Double) throws(ElucidateError) -> Canvas {
        try panel.validate()
        let width = normalized.width, height = normalized.height
        let values = normalized.values
        if panel.method.needsPhoto {
            guard let photo else {
                throw ElucidateError(.invalidArgument,
                                     "the \(panel.method.rawValue) view needs the photo (an image or the input tensor)")
            }
            guard photo.width == width && photo.height == height else {
                throw ElucidateError(.invalidArgument,
                    "the photo is \(photo.width)×\(photo.height) pixels but the attribution map is \(width)×\(height)")
            }
        }
        let range = panel.sign.valueRange
        var canvas = Canvas(width: width, height: height)
        switch panel.method {
        case .heatMap:
            canvas.pixels.withUnsafeMutableBufferPointer { out in
                for i in 0..<values.count {
                    let c = colormap.color(of: values[i], range: range)
                    out[i * 4] = c.red; out[i * 4 + 1] = c.green; out[i * 4 + 2] = c.blue
                }
            }
        case .blendedHeatMap:
            let gray = grayBackground(photo!)
            let alpha = overlayAlpha(alphaOverlay)
            canvas.pixels.withUnsafeMutableBufferPointer { out in
                for i in 0..<values.count {
                    let c = colormap.color(of: values[i], range: range)
                    let g = gray[i]
                    out[i * 4] = Canvas.blendOverOpaque(source: c.red, destination: g, alpha: alpha)
                    out[i * 4 + 1] = Canvas.blendOverOpaque(source: c.green, destination: g, alpha: alpha)
                    out[i * 4 + 2] = Canvas.blendOverOpaque(source: c.blue, destination: g, alpha: alpha)
                }
            }
        case .originalImage:
            canvas = Canvas(photo!)
        case .camOverlay:
            canvas = Canvas(CAMOverlay.showCAMOnImage(photo: photo!, mask: CAMOverlay.scaledMask(values)))
        case .maskedImage:
            let pixels = photo!.pixels
            canvas.pixels.withUnsafeMutableBufferPointer { out in
                for i in 0..<values.count {
                    // int64 pixels × float32 map → float64 product in NumPy, then astype(int), clip.
                    let v = Double(values[i])
                    for c in 0..<3 {
                        let product = (Double(pixels[i * 3 + c]) * v).rounded(.towardZero)
                        out[i * 4 + c] = UInt8(Swift.min(Swift.max(product, 0), 255))
                    }
                }
            }
        case .alphaScaling:
            canvas = Canvas(photo!)
            canvas.pixels.withUnsafeMutableBufferPointer { out in
                for i in 0..<values.count {
                    // float32 map × 255 in float32, astype(int), clip.
                    let a = (values[i] * 255).rounded(.towardZero)
                    out[i * 4 + 3] = UInt8(Swift.min(Swift.max(a, 0), 255))
                }
            }
        }
        return canvas
    }

    /// The opacity matplotlib gives an image drawn with `alpha=alphaOverlay`:
    /// `uint8(float32(255) · float32(alphaOverlay))`.
    public static func overlayAlpha(_ alphaOverlay: Double) -> UInt8 {
        let a = (Float(255) * Float(alphaOverlay)).rounded(.towardZero)
        return UInt8(Swift.min(Swift.max(a, 0), 255))
    }

    /// The photo in gray as `imshow(np.mean(photo, axis=2), cmap="gray")` draws it: the
    /// channel mean (float64), normalised to the image's own min…max (all 0 when the photo
    /// is uniform), looked up in matplotlib's gray table. One byte per pixel.
    public static func grayBackground(_ photo: RGBImage) -> [UInt8] {
        let count = photo.width * photo.height
        var means = [Double](repeating: 0, count: count)
        photo.pixels.withUnsafeBufferPointer { p in
            for i in 0..<count {
                means[i] = (Double(p[i * 3]) + Double(p[i * 3 + 1]) + Double(p[i * 3 + 2])) / 3
            }
        }
        let low = means.min() ?? 0, high = means.max() ?? 0
        let gray = Colormap.named("gray")!
        return means.map { m in
            guard high > low else { return gray[0].red }
            var scaled = (m - low) / (high - low) * Double(Colormap.size)
            if scaled == Double(Colormap.size) { scaled = Double(Colormap.size - 1) }
            let index = scaled >= Double(Colormap.size) ? Colormap.size - 1 : Swift.max(Int(scaled), 0)
            return gray[index].red
        }
    }
}
