import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// How one view draws an attribution map; Captum's `ImageVisualizationMethod`.
///
/// Raw values are the command-line spellings (Captum's names with `-` for `_`).
public enum VisualizationMethod: String, CaseIterable, Sendable {
    /// The normalised map through a colormap (Captum's `heat_map`).
    case heatMap = "heat-map"
    /// The heat map drawn with `alphaOverlay` over the photo in gray (Captum's
    /// `blended_heat_map`: the photo's channel mean, contrast-stretched to its own min…max).
    case blendedHeatMap = "blended-heat-map"
    /// The photo alone (Captum's `original_image`).
    case originalImage = "original-image"
    /// The photo multiplied pixel by pixel by the normalised map (Captum's `masked_image`).
    case maskedImage = "masked-image"
    /// The photo with the normalised map as its alpha channel (Captum's `alpha_scaling`).
    case alphaScaling = "alpha-scaling"
    /// pytorch-grad-cam's `show_cam_on_image`: the map's ReLU, min-max scaled (1e-7), through
    /// OpenCV's JET, blended half and half with the photo (`CAMOverlay`); the sign is ignored.
    case camOverlay = "cam-overlay"

    /// Whether the view draws the photo (and so needs one).
    public var needsPhoto: Bool { self != .heatMap }

    /// Whether the view has a colormap, and so a colorbar.
    public var usesColormap: Bool { self == .heatMap || self == .blendedHeatMap }

    /// Whether the view can show signed values; masked-image and alpha-scaling cannot.
    public var acceptsSignAll: Bool { self != .maskedImage && self != .alphaScaling }
}

/// Which attributions a view shows; Captum's `VisualizeSign`.
public enum VisualizationSign: String, CaseIterable, Sendable {
    /// Both signs, normalised to −1…1.
    case all
    /// Only positive attributions, 0…1.
    case positive
    /// Only negative attributions, their magnitude 0…1.
    case negative
    /// The magnitude of every attribution, 0…1.
    case absoluteValue = "absolute-value"

    /// The range of the normalised map, which the colormap spans: −1…1 for `all`,
    /// 0…1 otherwise (Captum's `vmin`, `vmax`).
    public var valueRange: (min: Float, max: Float) { self == .all ? (-1, 1) : (0, 1) }

    /// Captum's default colormap for this sign: red-white-green for `all`, Greens for
    /// `positive`, Reds for `negative`, Blues for `absolute-value`.
    public var defaultColormap: Colormap {
        switch self {
        case .all: .redWhiteGreen
        case .positive: Colormap.named("Greens")!
        case .negative: Colormap.named("Reds")!
        case .absoluteValue: Colormap.named("Blues")!
        }
    }
}

/// One view of a figure: a method, a sign and an optional title.
public struct VisualizationPanel: Equatable, Sendable {
    /// What the view draws (Captum's `method`: `heat_map`, `blended_heat_map`, …).
    public var method: VisualizationMethod
    /// Which attributions it shows (Captum's `sign`).
    public var sign: VisualizationSign
    /// The caption over the view; nil for none.
    public var title: String?

    /// A view; by default Captum's: a heat map of absolute values, untitled.
    public init(method: VisualizationMethod = .heatMap, sign: VisualizationSign = .absoluteValue, title: String? = nil) {
        self.method = method
        self.sign = sign
        self.title = title
    }

    /// Parses `METHOD:SIGN` (e.g. `blended-heat-map:absolute-value`); `METHOD` alone takes
    /// the default sign, absolute-value. Captum's underscore spellings are accepted too.
    ///
    /// - Throws: `.invalidArgument` naming the unknown method or sign, or when the method
    ///   cannot show sign `all` (masked-image, alpha-scaling).
    public static func parse(_ text: String) throws(ElucidateError) -> VisualizationPanel {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "-")
        }
        guard parts.count == 1 || parts.count == 2 else {
            throw ElucidateError(.invalidArgument, "panel '\(text)' is not METHOD:SIGN")
        }
        guard let method = VisualizationMethod(rawValue: parts[0]) else {
            let known = VisualizationMethod.allCases.map(\.rawValue).joined(separator: ", ")
            throw ElucidateError(.invalidArgument, "unknown visualization method '\(parts[0])' (known: \(known))")
        }
        var sign = VisualizationSign.absoluteValue
        if parts.count == 2 {
            guard let parsed = VisualizationSign(rawValue: parts[1]) else {
                let known = VisualizationSign.allCases.map(\.rawValue).joined(separator: ", ")
                throw ElucidateError(.invalidArgument, "unknown sign '\(parts[1])' in panel '\(text)' (known: \(known))")
            }
            sign = parsed
        }
        let panel = VisualizationPanel(method: method, sign: sign)
        try panel.validate()
        return panel
    }

    /// Refuses the combinations Captum refuses: sign `all` with masked-image or alpha-scaling.
    public func validate() throws(ElucidateError) {
        if sign == .all && !method.acceptsSignAll {
            throw ElucidateError(.invalidArgument,
                "\(method.rawValue) cannot show sign 'all' (positive and negative attributions at once); "
                + "choose positive, negative or absolute-value")
        }
    }
}
