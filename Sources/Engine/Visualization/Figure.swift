import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// Options shared by every view of a figure; Captum's keyword arguments of
/// `visualize_image_attr(_multiple)`, with Captum's defaults.
public struct VisualizationStyle: Sendable {
    /// The percentage of attribution mass treated as outliers (saturated): 0…100.
    public var outlierPercentage: Double = 2
    /// The colormap of heat maps; nil for Captum's default by sign
    /// (`VisualizationSign.defaultColormap`).
    public var colormap: Colormap?
    /// The opacity of the heat map over the gray photo in blended heat maps: 0…1.
    public var alphaOverlay: Double = 0.5
    /// Draw a horizontal colorbar under each view that has a colormap (the space is kept
    /// under the others, as Captum does, so the views stay aligned).
    public var showColorbar = false
    /// A title over the whole figure.
    public var title: String?
    /// Each map pixel becomes `scale`×`scale` picture pixels (1…64).
    public var scale = 1
    /// How the views are enlarged when `scale` > 1.
    public var resampling: Canvas.Resampling = .nearest

    /// Captum's defaults: 2 % outliers, its colormap by sign, α 0.5, no colorbar or title, scale 1.
    public init() {}

    /// The largest `scale` accepted.
    public static let maximumScale = 64

    /// - Throws: `.invalidArgument` for an outlier percentage outside 0…100, an overlay
    ///   opacity outside 0…1 or a scale outside 1…64.
    public func validate() throws(ElucidateError) {
        try AttributionMap.validateOutlierPercentage(outlierPercentage)
        guard alphaOverlay >= 0 && alphaOverlay <= 1 else {
            throw ElucidateError(.invalidArgument, "the overlay opacity must be between 0 and 1, not \(alphaOverlay)")
        }
        guard scale >= 1 && scale <= Self.maximumScale else {
            throw ElucidateError(.invalidArgument, "the scale must be between 1 and \(Self.maximumScale), not \(scale)")
        }
    }
}

/// A drawn picture of attributions: one or several views side by side, like Captum's
/// `visualize_image_attr` / `visualize_image_attr_multiple`, as an RGBA canvas.
///
/// Layout: a single view with no title and no colorbar is exactly the view — `scale·W` ×
/// `scale·H` pixels, no margin, no frame — so it can be used as an image layer. Otherwise
/// the views stand in a row on white, each in a one-pixel black frame, with its title
/// above, and (with `showColorbar`) a framed colour strip under it with tick marks and
/// labels; `style.title` is centred above everything. Text is the built-in `BitmapFont`,
/// magnified 2× when the views are at least 160 pixels wide.
public struct AttributionFigure: Sendable {
    /// The picture.
    public let canvas: Canvas
    /// The normalised map of each panel, in order (all zero where the map is blank).
    public let normalizedMaps: [AttributionMap]
    /// One line per problem that did not stop the drawing (e.g. a blank map).
    public let warnings: [String]

    /// Draws item `index` of `attributions` — `(N, C, H, W)`, `(C, H, W)` or `(H, W)`,
    /// channels summed — over `photo` (`W`×`H` RGB8, the pixels the model saw; needed by
    /// every method but heat-map).
    public static func draw(attributions: Tensor, index: Int = 0, photo: RGBImage?,
                            panels: [VisualizationPanel], style: VisualizationStyle = VisualizationStyle())
        throws(ElucidateError) -> AttributionFigure {
        try draw(map: AttributionMap(summingChannelsOf: attributions, index: index), photo: photo,
                 panels: panels, style: style)
    }

    /// Draws the views `panels` of an attribution map (channels already summed).
    ///
    /// - Throws: `.invalidArgument` for no panels, invalid style values, a method that
    ///   needs the photo without one, a photo of another size than the map, sign `all`
    ///   with masked-image or alpha-scaling, or a picture larger than
    ///   `ImageDecoder.maximumSide` / `ImageDecoder.maximumPixelCount`.
    public static func draw(map: AttributionMap, photo: RGBImage?, panels: [VisualizationPanel],
                            style: VisualizationStyle = VisualizationStyle()) throws(ElucidateError) -> AttributionFigure {
        guard !panels.isEmpty else { throw ElucidateError(.invalidArgument, "no views to draw") }
        try style.validate()
        for panel in panels { try panel.validate() }
        let viewWidth = map.width * style.scale, viewHeight = map.height * style.scale
        let estimate = (viewWidth + 200) * panels.count * (viewHeight + 200)
        guard viewWidth * panels.count <= ImageDecoder.maximumSide, viewHeight <= ImageDecoder.maximumSide,
              estimate <= ImageDecoder.maximumPixelCount else {
            throw ElucidateError(.invalidArgument,
                "a picture of \(panels.count) view\(panels.count == 1 ? "" : "s") of \(viewWidth)×\(viewHeight) pixels is too large; choose a smaller scale")
        }

        var views: [Canvas] = []
        var maps: [AttributionMap] = []
        var warnings: [String] = []
        var normalizedBySign: [VisualizationSign: AttributionMap.Normalized] = [:]
        for panel in panels {
            let normalized: AttributionMap.Normalized
            if let cached = normalizedBySign[panel.sign] {
                normalized = cached
            } else {
                normalized = map.normalized(sign: panel.sign, outlierPercentage: style.outlierPercentage)
                normalizedBySign[panel.sign] = normalized
                if let warning = normalized.warning, panel.method != .originalImage, !warnings.contains(warning) {
                    warnings.append(warning)
                }
            }
            let colormap = style.colormap ?? panel.sign.defaultColormap
            // cam-overlay scales the map itself, as pytorch-grad-cam does.
            let view = try AttributionView.draw(panel, normalized: panel.method == .camOverlay ? map : normalized.map, photo: photo,
                                                colormap: colormap, alphaOverlay: style.alphaOverlay)
            views.append(view.scaled(by: style.scale, resampling: style.resampling))
            maps.append(normalized.map)
        }

        let bare = panels.count == 1 && panels[0].title == nil && style.title == nil && !style.showColorbar
        let canvas = bare ? views[0] : FigureLayout(panels: panels, views: views, style: style).render()
        return AttributionFigure(canvas: canvas, normalizedMaps: maps, warnings: warnings)
    }

    /// The PNG bytes of the picture (RGB, or RGBA when it has transparent pixels).
    public func pngData() throws(ElucidateError) -> Data { try PNGWriter.encode(canvas) }

    /// Writes the picture as a PNG, atomically; refuses to overwrite `protectedInputs`.
    public func write(to url: URL, protectedInputs: [URL] = []) throws(ElucidateError) {
        try PNGWriter.write(canvas, to: url, protectedInputs: protectedInputs)
    }
}

/// Places titles, framed views and colorbars on a white canvas (see `AttributionFigure`).
struct FigureLayout {
    let panels: [VisualizationPanel]
    let views: [Canvas]
    let style: VisualizationStyle

    /// Text magnification and the spacings derived from it.
    var textScale: Int { (views.map(\.width).min() ?? 0) >= 160 ? 2 : 1 }
    var margin: Int { 6 * textScale }
    var columnGap: Int { 10 * textScale }
    var textGap: Int { 4 * textScale }
    var lineHeight: Int { BitmapFont.height(scale: textScale) }
    /// Tick labels are drawn one step smaller than titles (as matplotlib's are).
    var labelScale: Int { Swift.max(1, textScale - 1) }

    /// Colorbar geometry under a view of height `viewHeight`.
    var colorbarPad: Int { 4 * textScale + 1 }
    func stripHeight(_ viewHeight: Int) -> Int { Swift.max(5 * textScale, (viewHeight + 10) / 20) }
    var tickLength: Int { 3 * labelScale }

    struct Tick {
        let position: Int  // pixel column inside the strip
        let label: String
    }

    /// Nice ticks over `range` for a strip `width` pixels wide: the finest of the steps
    /// 0.2, 0.25, 0.5, 1 (at most 9 ticks) whose labels do not touch.
    func ticks(range: (min: Float, max: Float), width: Int) -> [Tick] {
        let span = Double(range.max - range.min)
        for (step, decimals) in [(0.2, 1), (0.25, 2), (0.5, 1), (1.0, 0)] {
            let count = Int((span / step).rounded()) + 1
            guard count <= 9 else { continue }
            var ticks: [Tick] = []
            for i in 0..<count {
                var value = Double(range.min) + Double(i) * step
                if abs(value) < 1e-9 { value = 0 }
                let position = Int((Double(i) * step / span * Double(width - 1)).rounded())
                ticks.append(Tick(position: position, label: String(format: "%.\(decimals)f", value)))
            }
            let widest = ticks.map { BitmapFont.width(of: $0.label, scale: labelScale) }.max() ?? 0
            let spacing = count > 1 ? Double(width - 1) / Double(count - 1) : Double(width)
            if Double(widest + 4 * labelScale) <= spacing || step == 1.0 { return ticks }
        }
        return []
    }

    /// One column: its width, and where its view sits horizontally.
    struct Column {
        let width: Int
        let viewX: Int
        let title: String?
        let ticks: [Tick]
    }

    func columns() -> [Column] {
        zip(panels, views).map { panel, view in
            var left = 0, right = view.width
            let title = panel.title.map { BitmapFont.fitting($0, maximumWidth: Swift.max(view.width, 400 * textScale), scale: textScale) }
            if let title {
                let w = BitmapFont.width(of: title, scale: textScale)
                let titleLeft = (view.width - w) / 2  // as `render` places it
                left = Swift.min(left, titleLeft)
                right = Swift.max(right, titleLeft + w)
            }
            var ticks: [Tick] = []
            if style.showColorbar && panel.method.usesColormap {
                ticks = self.ticks(range: panel.sign.valueRange, width: view.width)
                for tick in ticks {
                    let w = BitmapFont.width(of: tick.label, scale: labelScale)
                    left = Swift.min(left, tick.position - w / 2)
                    right = Swift.max(right, tick.position - w / 2 + w)
                }
            }
            return Column(width: right - left + 2, viewX: -left + 1, title: title, ticks: ticks)
        }
    }

    func render() -> Canvas {
        let columns = self.columns()
        let viewHeight = views.map(\.height).max() ?? 0
        let hasTitles = panels.contains { $0.title != nil }
        let figureTitle = style.title
        let contentWidth = columns.map(\.width).reduce(0, +) + columnGap * Swift.max(columns.count - 1, 0)
        let figureTitleWidth = figureTitle.map { BitmapFont.width(of: $0, scale: textScale) } ?? 0
        let width = Swift.max(contentWidth, figureTitleWidth) + 2 * margin

        var y = margin
        let figureTitleY = y
        if figureTitle != nil { y += lineHeight + 2 * textGap }
        let titleY = y
        if hasTitles { y += lineHeight + textGap }
        let viewY = y + 1  // room for the frame
        y = viewY + viewHeight + 1
        let strip = stripHeight(viewHeight)
        let stripY = y + colorbarPad
        if style.showColorbar {
            y = stripY + strip + 1 + tickLength + labelScale + BitmapFont.height(scale: labelScale)
        }
        let height = y + margin

        var canvas = Canvas(width: width, height: height)
        if let figureTitle {
            BitmapFont.draw(figureTitle, on: &canvas, x: (width - figureTitleWidth) / 2, y: figureTitleY, scale: textScale)
        }
        var x = margin + (width - 2 * margin - contentWidth) / 2
        for ((panel, view), column) in zip(zip(panels, views), columns) {
            let viewX = x + column.viewX
            if let title = column.title {
                let w = BitmapFont.width(of: title, scale: textScale)
                BitmapFont.draw(title, on: &canvas, x: viewX + (view.width - w) / 2, y: titleY, scale: textScale)
            }
            canvas.paste(view, x: viewX, y: viewY)
            canvas.frame(x: viewX, y: viewY, width: view.width, height: view.height)
            if style.showColorbar && panel.method.usesColormap {
                drawColorbar(on: &canvas, panel: panel, x: viewX, y: stripY, width: view.width, height: strip,
                             ticks: column.ticks)
            }
            x += column.width + columnGap
        }
        return canvas
    }

    /// A horizontal strip from the range's minimum (left) to maximum (right), each column
    /// the colormap's colour of the value at its centre (blended over white with the
    /// overlay opacity for blended heat maps, as matplotlib draws that colorbar), framed,
    /// with tick marks and labels below.
    func drawColorbar(on canvas: inout Canvas, panel: VisualizationPanel, x: Int, y: Int, width: Int, height: Int,
                      ticks: [Tick]) {
        let colormap = style.colormap ?? panel.sign.defaultColormap
        let range = panel.sign.valueRange
        let alpha: UInt8 = panel.method == .blendedHeatMap ? AttributionView.overlayAlpha(style.alphaOverlay) : 255
        for column in 0..<width {
            let t = (Float(column) + 0.5) / Float(width)
            let c = colormap.color(of: range.min + t * (range.max - range.min), range: range)
            let r = Canvas.blendOverOpaque(source: c.red, destination: 255, alpha: alpha)
            let g = Canvas.blendOverOpaque(source: c.green, destination: 255, alpha: alpha)
            let b = Canvas.blendOverOpaque(source: c.blue, destination: 255, alpha: alpha)
            canvas.fill(x: x + column, y: y, width: 1, height: height, red: r, green: g, blue: b)
        }
        canvas.frame(x: x, y: y, width: width, height: height)
        let tickTop = y + height + 1
        for tick in ticks {
            canvas.fill(x: x + tick.position, y: tickTop, width: 1, height: tickLength, red: 0, green: 0, blue: 0)
            let w = BitmapFont.width(of: tick.label, scale: labelScale)
            BitmapFont.draw(tick.label, on: &canvas, x: x + tick.position - w / 2, y: tickTop + tickLength + labelScale,
                            scale: labelScale)
        }
    }
}
