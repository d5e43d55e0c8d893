import ArgumentParser
import Elucidate
import Foundation

/// How attributions are drawn: the options of Captum's `visualize_image_attr(_multiple)`.
/// Shared by `elucidate visualize` (with `--out`) and `elucidate explain` (with
/// `--visualize OUT.png`), which adds it as
///
/// ```swift
/// @Option(name: .customLong("visualize"), help: "Also draw the first input's attributions to this PNG.") var visualize: String?
/// @OptionGroup var visualization: VisualizationOptions
/// // before any work: every output file can be written, none over an input
/// try OutputFiles.check([("--attributions", attributions)] + visualization.outputs(picture: visualize), inputs: …)
/// // in run(), once the attributions are computed and before anything is written: the photo is
/// // the model input with the preset's normalisation undone (the exact pixels the preset made)
/// let figure = try visualization.figure(all, index: 0, photo: VisualizationPhoto.denormalized(batches[0].tensor, preset: preset))
/// // then write the attributions, and the picture:
/// try visualization.write(figure, to: visualize, protectedInputs: …)
/// ```
struct VisualizationOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Views side by side, METHOD:SIGN[,METHOD:SIGN…]; methods heat-map, blended-heat-map, original-image, "
        + "masked-image, alpha-scaling, cam-overlay; signs all, positive, negative, absolute-value (the default).",
        valueName: "views"))
    var panels: String = "heat-map:absolute-value"

    @Option(name: .long, help: ArgumentHelp("A title per view, comma-separated (write \\, for a comma in a title).",
                                            valueName: "titles"))
    var titles: String?

    @Option(name: .long, help: "A title over the whole picture.")
    var title: String?

    @Option(name: .customLong("outlier-perc"), help: "Percentage of the attribution mass treated as outliers and saturated (0…100).")
    var outlierPerc: Double = 2

    @Option(name: .long, help: ArgumentHelp(
        "Heat-map colormap: viridis, magma, inferno, plasma, cividis, gray, Greys, Greens, Reds, Blues, Purples, "
        + "Oranges, RdYlGn, RdBu, bwr, coolwarm, seismic, hot, jet, turbo, RdWhGn (any with _r), or a gradient "
        + "such as 0:#ffffff,0.25:#000000,1:#000000 (default: by sign, as Captum).", valueName: "colormap"))
    var cmap: String?

    @Option(name: .customLong("alpha-overlay"), help: "Opacity of the heat map in blended-heat-map views (0…1).")
    var alphaOverlay: Double = 0.5

    @Flag(name: .long, help: "Draw a colorbar under each heat map.")
    var colorbar = false

    @Option(name: .long, help: "Enlarge each map pixel to K×K picture pixels (1…64).")
    var scale: Int = 1

    @Option(name: .long, help: "How --scale enlarges: nearest (blocks) or bilinear (smooth).")
    var resample: Canvas.Resampling = .nearest

    @Option(name: .customLong("normalized-map"), help: ArgumentHelp(
        "Also write each view's normalised map, float32 (views, H, W), to this .npy file.", valueName: "file.npy"))
    var normalizedMap: String?

    func validate() throws {
        do { _ = try settings() } catch { throw ValidationError(error.message) }
    }

    /// These options for the library, by their command-line names.
    var options: Options {
        var options = Options(["panels": .string(panels), "outlier-perc": .number(outlierPerc),
                               "alpha-overlay": .number(alphaOverlay), "colorbar": .bool(colorbar),
                               "scale": .number(Double(scale)), "resample": .string(resample.rawValue)])
        if let titles { options["titles"] = .string(titles) }
        if let title { options["title"] = .string(title) }
        if let cmap { options["cmap"] = .string(cmap) }
        if let normalizedMap { options["normalized-map"] = .string(normalizedMap) }
        return options
    }

    /// The library's picture settings these options describe.
    func settings() throws(ElucidateError) -> PictureSettings { try PictureSettings(options: options) }

    /// The first view that draws the photo (all but heat-map do), if any.
    var firstViewNeedingPhoto: VisualizationPanel? { (try? settings())?.firstViewNeedingPhoto }

    /// The output files these options write beside the picture `picture` (none without a
    /// picture), as (option, path) pairs for `OutputFiles.check`.
    func outputs(picture: String?, option: String = "--visualize") -> [(option: String, path: String?)] {
        guard let picture else { return [] }
        return [(option, picture), ("--normalized-map", normalizedMap)]
    }

    /// The refusal for two of `outputs` naming one file.
    static func sameFileMessage(_ first: String, _ second: String) -> String {
        second == "--normalized-map" && (first == "--out" || first == "--visualize")
            ? "the picture and the normalised map cannot be the same file"
            : "\(first) and \(second) cannot be the same file"
    }

    /// Draws item `index` of `attributions` over `photo` (nothing is written yet).
    func figure(_ attributions: Tensor, index: Int = 0, photo: RGBImage?) throws(ElucidateError) -> AttributionFigure {
        try settings().figure(attributions, index: index, photo: photo)
    }

    /// Writes `figure` as a PNG to `output` (and the normalised maps, if asked), atomically,
    /// never over `protectedInputs`; prints each warning to stderr as `elucidate: warning: …`.
    /// Check the outputs first with `OutputFiles.check(outputs(picture:))`, so that a failure
    /// here (a full disk) is the only way to end with the picture but not the map.
    func write(_ figure: AttributionFigure, to output: String, protectedInputs: [URL]) throws(ElucidateError) {
        for warning in try settings().write(figure, to: output, protectedInputs: protectedInputs) {
            StandardError.write("elucidate: warning: \(TerminalText.escaped(warning))\n")
        }
    }
}

extension Canvas.Resampling: ExpressibleByArgument {}
