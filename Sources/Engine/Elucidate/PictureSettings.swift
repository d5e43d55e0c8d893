import Foundation

/// How attributions are drawn — the options of Captum's `visualize_image_attr(_multiple)` —
/// read from the command line's picture options: `panels` (`heat-map:absolute-value`, the
/// default), `titles`, `title`, `outlier-perc`, `cmap`, `alpha-overlay`, `colorbar`, `scale`,
/// `resample`, and `normalized-map` (a `.npy` written beside the picture).
public struct PictureSettings: Sendable {
    /// The views side by side, left to right (`panels`).
    public var panels: [VisualizationPanel]
    /// What every view shares: outliers, colormap, overlay, colorbar, title, scale.
    public var style: VisualizationStyle
    /// Where each view's normalised map goes, float32 `(views, H, W)`, if anywhere.
    public var normalizedMap: String?

    /// Reads picture options, refusing bad values and any other option.
    public init(options: Options) throws(ElucidateError) {
        var reader = OptionReader(options)
        try self.init(reading: &reader)
        try reader.finish(context: "a picture")
    }

    init(reading reader: inout OptionReader) throws(ElucidateError) {
        let panelText = try reader.string("panels", default: "heat-map:absolute-value")
        var parsed: [VisualizationPanel] = []
        for spec in panelText.split(separator: ",", omittingEmptySubsequences: false) {
            parsed.append(try VisualizationPanel.parse(String(spec)))
        }
        if let titles = try reader.string("titles") {
            let names = Self.splitTitles(titles)
            guard names.count == parsed.count else {
                throw ElucidateError(.invalidArgument,
                                     "--titles gives \(names.count) title\(names.count == 1 ? "" : "s") for \(parsed.count) view\(parsed.count == 1 ? "" : "s")")
            }
            for i in parsed.indices { parsed[i].title = names[i].isEmpty ? nil : names[i] }
        }
        panels = parsed
        var style = VisualizationStyle()
        style.outlierPercentage = try reader.double("outlier-perc", default: 2)
        if let cmap = try reader.string("cmap") { style.colormap = try Colormap.parse(cmap) }
        style.alphaOverlay = try reader.double("alpha-overlay", default: 0.5)
        style.showColorbar = try reader.bool("colorbar")
        style.title = try reader.string("title")
        style.scale = try reader.int("scale", default: 1)
        style.resampling = try reader.choice("resample", Canvas.Resampling.self) ?? .nearest
        try style.validate()
        self.style = style
        normalizedMap = try reader.string("normalized-map")
    }

    /// Comma-separated titles; `\,` is a comma inside a title.
    static func splitTitles(_ text: String) -> [String] {
        var out: [String] = [], current = ""
        var escaped = false
        for ch in text {
            if escaped { current.append(ch); escaped = false }
            else if ch == "\\" { escaped = true }
            else if ch == "," { out.append(current.trimmingCharacters(in: .whitespaces)); current = "" }
            else { current.append(ch) }
        }
        if escaped { current.append("\\") }
        out.append(current.trimmingCharacters(in: .whitespaces))
        return out
    }

    /// The first view that draws the photo (all but heat-map do), if any.
    public var firstViewNeedingPhoto: VisualizationPanel? { panels.first { $0.method.needsPhoto } }

    /// Draws item `index` of `attributions` over `photo` (nothing is written yet).
    ///
    /// A layer's map `[N, C, h, w]` whose h×w is not the photo's (Grad-CAM's and the CAMs'
    /// `[N, 1, h, w]`, a layer method's `[N, 256, 14, 14]`) is reduced as Captum's
    /// `visualize_image_attr` reduces channels — summed, at the layer's resolution — and that
    /// one map is bilinearly upsampled to the photo (OpenCV's INTER_LINEAR) before the views
    /// apply the sign and outlier handling. The channel sum and the bilinear upsample are both
    /// linear, so summing first gives the picture of upsampling each channel and summing,
    /// up to float rounding; summing first is C times less work and makes a C>1 map's
    /// picture exactly the picture of its channel sum. Without a photo the map is drawn at
    /// the layer's resolution. A 2-D array `[N, K]` (a layer without positions, such as `fc`)
    /// with a photo of another size is refused.
    public func figure(_ attributions: Tensor, index: Int = 0, photo: RGBImage?) throws(ElucidateError) -> AttributionFigure {
        if let photo, attributions.rank == 2, attributions.shape != [photo.height, photo.width] {
            // A layer without positions (fc, a neuron's 2-D layer) gives (N, K): nothing to lay over the photo.
            throw ElucidateError(.invalidArgument,
                                 "attributions of shape \(attributions.shape) have no positions to draw over the photo: choose a layer whose output is (N,C,h,w)")
        }
        if let photo, Self.isLayerMap(attributions, photoHeight: photo.height, photoWidth: photo.width) {
            let map = try AttributionMap(summingChannelsOf: attributions, index: index)
            return try AttributionFigure.draw(map: map.resized(width: photo.width, height: photo.height), photo: photo,
                                              panels: panels, style: style)
        }
        return try AttributionFigure.draw(attributions: attributions, index: index, photo: photo, panels: panels, style: style)
    }

    /// Whether `attributions` are a layer's map `[N, C, h, w]` to be upsampled to a
    /// `photoHeight × photoWidth` photo: 4-D, of another resolution than the photo.
    public static func isLayerMap(_ attributions: Tensor, photoHeight: Int, photoWidth: Int) -> Bool {
        attributions.rank == 4 && (attributions.shape[2] != photoHeight || attributions.shape[3] != photoWidth)
    }

    /// Writes `figure` as a PNG to `path` (and the normalised maps, if asked), each atomically,
    /// never over `protectedInputs`, and returns the figure's warnings for the caller to show.
    public func write(_ figure: AttributionFigure, to path: String, protectedInputs: [URL] = []) throws(ElucidateError) -> [String] {
        let outputURL = URL(fileURLWithPath: path)
        if let normalizedMap {
            let mapURL = URL(fileURLWithPath: normalizedMap)
            if (try? AtomicFile.destination(of: mapURL))?.isFile != false,
               mapURL.standardizedFileURL.resolvingSymlinksInPath() == outputURL.standardizedFileURL.resolvingSymlinksInPath() {
                throw ElucidateError(.invalidArgument, "the picture and the normalised map cannot be the same file", path: normalizedMap)
            }
        }
        try figure.write(to: outputURL, protectedInputs: protectedInputs)
        if let normalizedMap {
            let maps = figure.normalizedMaps
            let tensor = Tensor(shape: [maps.count, maps[0].height, maps[0].width], values: maps.flatMap(\.values))
            try NPY.write(tensor, to: URL(fileURLWithPath: normalizedMap), protectedInputs: protectedInputs + [outputURL])
        }
        return figure.warnings
    }
}

/// Draws explanations as `elucidate explain --visualize` does.
public enum Visualizer {
    /// Draws row `index` (option `index`, default 0) of `attributions` over the model input
    /// `input` `[N, C, H, W]` with the normalisation of the model's preset (or option `preset`)
    /// undone — exactly the pixels the preset made — and writes the PNG to `path`. The
    /// attributions are `[N, C', H, W]` (channels summed), or a layer's map `[N, C', h, w]`
    /// (any C'), channels summed and upsampled to the photo (`PictureSettings.figure`). The
    /// other options are `PictureSettings`'.
    ///
    /// - Returns: the figure's warnings (e.g. an all-zero map).
    @discardableResult
    public static func write(attributions: Tensor, input: Tensor, classifier: Classifier, options: Options = Options(),
                             to path: String) throws(ElucidateError) -> [String] {
        var reader = OptionReader(options)
        let index = try reader.int("index", default: 0)
        let preset = try reader.choice("preset", PreprocessingPreset.self) ?? classifier.preset ?? .torchvision
        let settings = try PictureSettings(reading: &reader)
        try reader.finish(context: "a picture")
        guard attributions.rank == 4, input.rank == 4, attributions.shape[0] == input.shape[0],
              attributions.shape[1] >= 1, attributions.shape[2] >= 1, attributions.shape[3] >= 1 else {
            throw ElucidateError(.invalidArgument,
                                 "the attributions \(attributions.shape) and the input \(input.shape) must be [N, C, H, W] and [N, C, h, w] (a layer's map, drawn upsampled) with one N")
        }
        guard index >= 0 && index < input.shape[0] else {
            throw ElucidateError(.invalidArgument, "--index \(index) does not exist: the batch holds \(input.shape[0]) items")
        }
        let photo = try VisualizationPhoto.denormalized(input, preset: preset, index: index)
        let figure = try settings.figure(attributions, index: index, photo: photo)
        return try settings.write(figure, to: path)
    }
}

