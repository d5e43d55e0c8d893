import Foundation

// pytorch-grad-cam's CAM family in the catalog, apart from Grad-CAM (`grad-cam`, Captum's
// `LayerGradCam`, whose map is the same raw map).

extension ExplainMethod {
    /// Whether the method is one of pytorch-grad-cam's CAMs added beside Grad-CAM: its
    /// attributions are the raw map `[N, 1, h, w]` (`CAMPostprocessing.final` gives the final one).
    public var isCAM: Bool {
        [.gradCAMPlusPlus, .xgradCAM, .hiResCAM, .layerCAM, .eigenCAM, .scoreCAM, .ablationCAM].contains(self)
    }
}

extension MethodRecipe {
    /// The maker of CAM `method` on `layer`: `batch-size` (copies per forward pass, Score-CAM
    /// 16 and Ablation-CAM 32 as pytorch-grad-cam) or `internal-batch-size` (inputs per pass).
    static func camMaker(_ method: ExplainMethod, layer: LayerChoice, reading reader: inout OptionReader,
                         recording recorded: inout [String: String]) throws(ElucidateError) -> @Sendable () throws(ElucidateError) -> MethodMaker {
        let fallback = method == .scoreCAM ? 16 : method == .ablationCAM ? 32 : 16
        let inputs = try reader.int("internal-batch-size", default: 16)
        let copies = try reader.int("batch-size", default: fallback)
        if inputs < 1 { throw ElucidateError(.invalidArgument, "--internal-batch-size must be at least 1") }
        if copies < 1 { throw ElucidateError(.invalidArgument, "--batch-size must be at least 1") }
        switch method {
        case .scoreCAM:
            recorded["batch-size"] = String(copies)
            return { { _, _ in ScoreCAM(layer: layer, batchSize: copies) } }
        case .ablationCAM:
            recorded["batch-size"] = String(copies)
            return { { _, _ in AblationCAM(layer: layer, batchSize: copies) } }
        case .eigenCAM:
            return { { _, _ in EigenCAM(layer: layer, batchSize: inputs) } }
        default:
            let kind = GradientCAMKind(rawValue: method.rawValue)!
            return { { _, _ in GradientCAM(kind, layer: layer, batchSize: inputs) } }
        }
    }
}
