import Foundation

/// The attribution methods by the names the command line (`elucidate explain NAME`) and the
/// C API (`elu_explain(…, "NAME", …)`) use.
public enum ExplainMethod: String, CaseIterable, Sendable {
    /// `Saliency`: the gradient (its absolute value unless `signed`).
    case saliency
    /// `InputXGradient`: the gradient times the input.
    case inputXGradient = "input-x-gradient"
    /// `IntegratedGradients`: the gradient integrated along the path from a baseline.
    case integratedGradients = "integrated-gradients"
    /// `GradientSHAP`: expected gradients over random baselines and path points.
    case gradientSHAP = "gradient-shap"
    /// `DeepLift` with the Rescale rule, against one baseline.
    case deepLift = "deeplift"
    /// `DeepLiftSHAP`: DeepLIFT averaged over a baseline distribution.
    case deepLiftSHAP = "deeplift-shap"
    /// `ModifiedGradient(.guidedBackprop)`: guided backpropagation.
    case guidedBackprop = "guided-backprop"
    /// `ModifiedGradient(.deconvolution)`: deconvolution.
    case deconvolution
    /// `Occlusion`: a sliding window replaced by the baseline.
    case occlusion
    /// `FeatureAblation`: each feature-mask group replaced by the baseline in turn.
    case featureAblation = "feature-ablation"
    /// `ShapleyValueSampling`: Shapley values over random feature orders.
    case shapleyValueSampling = "shapley-value-sampling"
    /// `KernelSHAP`: a Shapley-kernel-weighted regression over coalitions of features.
    case kernelSHAP = "kernel-shap"
    /// `LIME`: a sparse linear surrogate fitted to random on/off samples of the features.
    case lime
    /// `LayerActivation`: a named layer's output (or input) itself, the layer's shape.
    case layerActivation = "layer-activation"
    /// `LayerGradientXActivation`: a layer's gradient times its activation, the layer's shape.
    case layerGradientXActivation = "layer-gradient-x-activation"
    /// `LayerGradCam`: Grad-CAM of a layer, `[N, 1, h, w]` (or upsampled to the input's H, W).
    case gradCAM = "grad-cam"
    /// `LayerIntegratedGradients`: Integrated Gradients in a layer's space, the layer's shape.
    case layerIntegratedGradients = "layer-integrated-gradients"
    /// `LayerConductance`: Integrated Gradients' flow through each unit of a layer, the layer's shape.
    case layerConductance = "layer-conductance"
    /// `InternalInfluence`: a layer's gradient integrated along the input path, the layer's shape.
    case internalInfluence = "internal-influence"
    /// `GuidedGradCam`: guided backpropagation times the upsampled Grad-CAM map, the input's shape.
    case guidedGradCAM = "guided-grad-cam"
    /// `NeuronAttribution(Saliency)`: the gradient of one unit of a layer, the input's shape.
    case neuronGradient = "neuron-gradient"
    /// `NeuronAttribution(ModifiedGradient(.guidedBackprop))`: guided backpropagation of one unit.
    case neuronGuidedBackprop = "neuron-guided-backprop"
    /// `NeuronAttribution(IntegratedGradients)`: Integrated Gradients of one unit of a layer.
    case neuronIntegratedGradients = "neuron-integrated-gradients"
    /// `NeuronConductance`: each input element's Integrated Gradients flowing through one unit.
    case neuronConductance = "neuron-conductance"
    /// `LayerDeepLift`: DeepLIFT (Rescale) of a layer against a baseline, the layer's shape.
    case layerDeepLift = "layer-deeplift"
    /// `LayerFeatureAblation`: groups of a layer's units set to a baseline in turn, the layer's shape.
    case layerFeatureAblation = "layer-feature-ablation"
    /// `LayerGradientSHAP`: GradientSHAP at a layer (random baselines and path points), the layer's shape.
    case layerGradientSHAP = "layer-gradient-shap"
    /// `LRP`: layer-wise relevance propagation with one of Zennit's composites (ResNets, torchvision head).
    case lrp
    /// `GradientCAM(.gradCAMPlusPlus)`: pytorch-grad-cam's Grad-CAM++, the raw map `[N, 1, h, w]`.
    case gradCAMPlusPlus = "grad-cam-plus-plus"
    /// `GradientCAM(.xgradCAM)`: pytorch-grad-cam's XGrad-CAM, the raw map `[N, 1, h, w]`.
    case xgradCAM = "xgrad-cam"
    /// `GradientCAM(.hiResCAM)`: pytorch-grad-cam's HiResCAM, the raw map `[N, 1, h, w]`.
    case hiResCAM = "hires-cam"
    /// `GradientCAM(.layerCAM)`: pytorch-grad-cam's LayerCAM, the raw map `[N, 1, h, w]`.
    case layerCAM = "layer-cam"
    /// `EigenCAM`: the activations' first principal component, the raw map `[N, 1, h, w]`.
    case eigenCAM = "eigen-cam"
    /// `ScoreCAM`: input masked by each upsampled channel, softmax of the scores as weights, `[N, 1, h, w]`.
    case scoreCAM = "score-cam"
    /// `AblationCAM`: each channel of the layer ablated in turn, the score drops as weights, `[N, 1, h, w]`.
    case ablationCAM = "ablation-cam"

    /// The method called `name`, or an error listing the known names.
    public static func named(_ name: String) throws(ElucidateError) -> ExplainMethod {
        try named(name, kind: "method")
    }

    /// What its progress (`AttributionProgress`) counts: `evals` (perturbed copies scored) for
    /// the perturbation methods, `passes` (forward/backward passes) for the gradient methods.
    public var progressUnit: String { usesFeatureMask || self == .occlusion ? "evals" : "passes" }

    /// Whether the method attributes to a named layer (`layer` option) rather than the input:
    /// its attributions have the layer's shape, not the input's.
    public var isLayerMethod: Bool {
        [.layerActivation, .layerGradientXActivation, .gradCAM, .layerIntegratedGradients, .layerConductance,
         .internalInfluence, .layerDeepLift, .layerFeatureAblation, .layerGradientSHAP].contains(self) || isCAM
    }

    /// Whether the method reads a named layer (`layer` option): the layer methods, Guided
    /// Grad-CAM and the neuron methods.
    public var needsLayer: Bool { isLayerMethod || isNeuronMethod || self == .guidedGradCAM }

    /// Whether the method explains one unit of a layer (`neuron` option) instead of a class.
    public var isNeuronMethod: Bool {
        [.neuronGradient, .neuronGuidedBackprop, .neuronIntegratedGradients, .neuronConductance].contains(self)
    }

    /// Whether the method groups pixels into features (a mask) and scores perturbed copies.
    var usesFeatureMask: Bool {
        [.featureAblation, .shapleyValueSampling, .kernelSHAP, .lime].contains(self)
    }
}

/// Makes a method for one input batch `[N, C, H, W]`, normalised by the preset given (a
/// feature mask is built from the batch itself).
typealias MethodMaker = @Sendable (_ inputs: Tensor, _ preset: PreprocessingPreset) throws(ElucidateError) -> any AttributionMethod

/// One method's settings, read and checked from options without touching any file.
struct MethodRecipe: Sendable {
    let method: ExplainMethod
    /// The settings as the report records them (option name → command-line text).
    var recorded: [String: String]
    /// Files the method will read (baselines, a feature mask): no output may overwrite them.
    var inputFiles: [String]
    /// Reads those files and returns the maker of the method for each batch.
    let prepare: @Sendable () throws(ElucidateError) -> MethodMaker

    /// Reads `method`'s options from `reader` (leaving the others for the caller to refuse);
    /// `seed` drives the stochastic methods.
    init(_ method: ExplainMethod, reading reader: inout OptionReader, seed: UInt64) throws(ElucidateError) {
        self.method = method
        var recorded: [String: String] = [:]
        var files: [String] = []
        func batchSize(_ fallback: Int) throws(ElucidateError) -> Int {
            let size = try reader.int("internal-batch-size", default: fallback)
            if size < 1 { throw ElucidateError(.invalidArgument, "--internal-batch-size must be at least 1") }
            return size
        }
        func baselineText() throws(ElucidateError) -> String {
            let text = try reader.string("baseline", default: "zero")
            recorded["baseline"] = text
            files += BaselineSpec(text).files
            return text
        }
        switch method {
        case .saliency:
            let signed = try reader.bool("signed")
            let size = try batchSize(16)
            recorded["signed"] = String(signed)
            prepare = { { _, _ in Saliency(signed: signed, batchSize: size) } }
        case .inputXGradient:
            let size = try batchSize(16)
            prepare = { { _, _ in InputXGradient(batchSize: size) } }
        case .guidedBackprop, .deconvolution:
            let size = try batchSize(16)
            let rule: ModifiedGradient.Rule = method == .guidedBackprop ? .guidedBackprop : .deconvolution
            prepare = { { _, _ in ModifiedGradient(rule, batchSize: size) } }
        case .integratedGradients:
            let steps = try reader.int("steps", default: 50)
            let quadrature = try reader.choice("quadrature", Quadrature.self) ?? .gaussLegendre
            if steps < quadrature.minimumSteps {
                throw ElucidateError(.invalidArgument,
                                     "--steps must be at least \(quadrature.minimumSteps) for \(quadrature.rawValue)")
            }
            let baseline = BaselineSpec(try baselineText())
            let size = try batchSize(16)
            recorded["steps"] = String(steps)
            recorded["quadrature"] = quadrature.rawValue
            prepare = { () throws(ElucidateError) -> MethodMaker in
                let resolved = try baseline.load()
                return { _, _ in
                    IntegratedGradients(steps: steps, quadrature: quadrature, baseline: resolved, internalBatchSize: size)
                }
            }
        case .gradientSHAP:
            let shap = try GradientSHAPSettings(reading: &reader, recording: &recorded, files: &files, seed: seed)
            let size = try batchSize(16)
            prepare = { () throws(ElucidateError) -> MethodMaker in
                let distribution = try shap.distribution()
                return { _, _ in
                    GradientSHAP(samples: shap.samples, stdev: shap.stdev, baselines: distribution, batchSize: size, seed: seed)
                }
            }
        case .deepLift:
            let baseline = BaselineSpec(try baselineText())
            let size = try batchSize(8)
            prepare = { () throws(ElucidateError) -> MethodMaker in
                let resolved = try baseline.load()
                return { _, _ in DeepLift(baseline: resolved, batchSize: size) }
            }
        case .deepLiftSHAP:
            guard let baselines = try reader.string("baselines") else {
                throw ElucidateError(.invalidArgument, "deeplift-shap needs --baselines FILE.npy (B,3,H,W)")
            }
            let size = try batchSize(8)
            recorded["baselines"] = baselines
            files.append(baselines)
            prepare = { () throws(ElucidateError) -> MethodMaker in
                let distribution = try NPY.readFiniteFloat32(URL(fileURLWithPath: baselines), what: "the baselines")
                return { _, _ in DeepLiftSHAP(baselines: distribution, batchSize: size) }
            }
        case .lrp:
            let size = try batchSize(8)
            prepare = try Self.lrpMethod(reading: &reader, recording: &recorded, batchSize: size)
        case .occlusion:
            let windowText = try reader.string("window", default: "3,15,15")
            let strideText = try reader.string("stride", default: "3,8,8")
            let window = try Self.triple(windowText, "--window")
            let stride = try Self.triple(strideText, "--stride")
            let baseline = BaselineSpec(try baselineText())
            let perEval = try reader.int("perturbations-per-eval")
            if let perEval, perEval < 1 {
                throw ElucidateError(.invalidArgument, "--perturbations-per-eval must be at least 1")
            }
            let evaluationText = try reader.string("evaluation", default: "incremental")
            guard let evaluation = Occlusion.Evaluation(name: evaluationText) else {
                throw ElucidateError(.invalidArgument, "--evaluation must be incremental or full")
            }
            let perEvalUsed = Occlusion(window: window, stride: stride, perturbationsPerEval: perEval,
                                        evaluation: evaluation).perturbationsPerEval
            recorded["window"] = windowText
            recorded["stride"] = strideText
            recorded["perturbations-per-eval"] = String(perEvalUsed)
            recorded["evaluation"] = evaluationText
            prepare = { () throws(ElucidateError) -> MethodMaker in
                let resolved = try baseline.load()
                return { inputs, _ throws(ElucidateError) in
                    let occlusion = Occlusion(window: window, stride: stride, baseline: resolved,
                                              perturbationsPerEval: perEval, evaluation: evaluation)
                    _ = try occlusion.windowCount(rowShape: Array(inputs.shape.dropFirst()))  // bad geometry refused before any work
                    return occlusion
                }
            }
        case .layerActivation, .layerGradientXActivation, .gradCAM, .layerIntegratedGradients, .layerConductance,
             .internalInfluence, .guidedGradCAM, .neuronGradient, .neuronGuidedBackprop, .neuronIntegratedGradients,
             .neuronConductance, .layerDeepLift, .layerFeatureAblation, .layerGradientSHAP, .gradCAMPlusPlus, .xgradCAM,
             .hiResCAM, .layerCAM, .eigenCAM, .scoreCAM, .ablationCAM:
            guard let name = try reader.string("layer"), !name.isEmpty else {
                throw ElucidateError(.invalidArgument,
                                     "\(method.rawValue) needs --layer NAME (a PyTorch module path such as layer4; `elucidate models --layers MODEL` lists them)")
            }
            let layer = LayerChoice(name, atInput: try reader.bool("layer-input"))
            recorded["layer"] = name
            recorded["layer-input"] = String(layer.atInput)
            var unit: [Int] = []
            if method.isNeuronMethod {
                guard let text = try reader.string("neuron") else {
                    throw ElucidateError(.invalidArgument, "\(method.rawValue) needs --neuron C,H,W (or K for a 2-D layer)")
                }
                let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                    .map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                    throw ElucidateError(.invalidArgument, "--neuron must be integers ≥ 0 separated by commas (C,H,W), got '\(text)'")
                }
                unit = parts.map { $0! }
                recorded["neuron"] = unit.map(String.init).joined(separator: ",")
            }
            let neuron = unit
            func pathSettings() throws(ElucidateError) -> (Int, Quadrature, BaselineSpec, Int) {
                let steps = try reader.int("steps", default: 50)
                let quadrature = try reader.choice("quadrature", Quadrature.self) ?? .gaussLegendre
                // Conductance evaluates steps + 1 points, so any step count ≥ 1 has enough.
                let minimum = method == .layerConductance ? 1 : quadrature.minimumSteps
                if steps < minimum {
                    throw ElucidateError(.invalidArgument, "--steps must be at least \(minimum) for \(quadrature.rawValue)")
                }
                let baseline = BaselineSpec(try baselineText())
                recorded["steps"] = String(steps)
                recorded["quadrature"] = quadrature.rawValue
                return (steps, quadrature, baseline, try batchSize(16))
            }
            switch method {
            case _ where method.isCAM:
                prepare = try Self.camMaker(method, layer: layer, reading: &reader, recording: &recorded)
            case .layerActivation:
                let size = try batchSize(16)
                prepare = { { _, _ in LayerActivation(layer: layer, batchSize: size) } }
            case .layerGradientXActivation:
                let size = try batchSize(16)
                prepare = { { _, _ in LayerGradientXActivation(layer: layer, batchSize: size) } }
            case .gradCAM, .guidedGradCAM:
                let relu = method == .gradCAM ? try reader.bool("relu-attributions") : true
                let upsample = try reader.choice("upsample", LayerInterpolation.self)
                let size = try batchSize(16)
                recorded["relu-attributions"] = String(relu)
                if method == .gradCAM {
                    if let upsample { recorded["upsample"] = upsample.rawValue }
                    prepare = { { _, _ in LayerGradCam(layer: layer, reluAttributions: relu, upsample: upsample, batchSize: size) } }
                } else {
                    // Captum's GuidedGradCam interpolates with "nearest" unless told otherwise.
                    let mode = upsample ?? .nearest
                    recorded["upsample"] = mode.rawValue
                    prepare = { { _, _ in GuidedGradCam(layer: layer, upsample: mode, batchSize: size) } }
                }
            case .layerDeepLift:
                let baseline = BaselineSpec(try baselineText())
                let size = try batchSize(8)
                prepare = { () throws(ElucidateError) -> MethodMaker in
                    let resolved = try baseline.load()
                    return { _, _ in LayerDeepLift(layer: layer, baseline: resolved, batchSize: size) }
                }
            case .layerGradientSHAP:
                let shap = try GradientSHAPSettings(reading: &reader, recording: &recorded, files: &files, seed: seed)
                let size = try batchSize(16)
                prepare = { () throws(ElucidateError) -> MethodMaker in
                    let distribution = try shap.distribution()
                    return { _, _ in
                        LayerGradientSHAP(layer: layer, samples: shap.samples, stdev: shap.stdev, baselines: distribution,
                                          batchSize: size, seed: seed)
                    }
                }
            case .layerFeatureAblation:
                let maskFile = try reader.string("layer-mask")
                let baselineValue = try reader.float("baseline", default: 0)
                if !baselineValue.isFinite { throw ElucidateError(.invalidArgument, "--baseline must be a finite number") }
                let perEval = try reader.int("perturbations-per-eval", default: 1)
                if perEval < 1 { throw ElucidateError(.invalidArgument, "--perturbations-per-eval must be at least 1") }
                recorded["baseline"] = String(baselineValue)
                recorded["perturbations-per-eval"] = String(perEval)
                if let maskFile {
                    recorded["layer-mask"] = maskFile
                    files.append(maskFile)
                }
                prepare = { () throws(ElucidateError) -> MethodMaker in
                    let mask = try maskFile.map { path throws(ElucidateError) in try NPY.readInt32(URL(fileURLWithPath: path)) }
                    return { _, _ in
                        LayerFeatureAblation(layer: layer, mask: mask.map { ($0.shape, $0.values) }, baseline: baselineValue,
                                             perturbationsPerEval: perEval)
                    }
                }
            case .neuronGradient:
                let size = try batchSize(16)
                prepare = { { _, _ in NeuronAttribution(Saliency(signed: true, batchSize: size), layer: layer, neuron: neuron) } }
            case .neuronGuidedBackprop:
                let size = try batchSize(16)
                prepare = { { _, _ in
                    NeuronAttribution(ModifiedGradient(.guidedBackprop, batchSize: size), layer: layer, neuron: neuron)
                } }
            default:
                let (steps, quadrature, baseline, size) = try pathSettings()
                prepare = { () throws(ElucidateError) -> MethodMaker in
                    let resolved = try baseline.load()
                    return { _, _ in
                        switch method {
                        case .layerConductance:
                            return LayerConductance(layer: layer, steps: steps, quadrature: quadrature, baseline: resolved,
                                                    internalBatchSize: size)
                        case .internalInfluence:
                            return InternalInfluence(layer: layer, steps: steps, quadrature: quadrature, baseline: resolved,
                                                     internalBatchSize: size)
                        case .neuronConductance:
                            return NeuronConductance(layer: layer, neuron: neuron, steps: steps, quadrature: quadrature,
                                                     baseline: resolved, internalBatchSize: size)
                        case .neuronIntegratedGradients:
                            return NeuronAttribution(IntegratedGradients(steps: steps, quadrature: quadrature, baseline: resolved,
                                                                         internalBatchSize: size),
                                                     layer: layer, neuron: neuron)
                        default:
                            return LayerIntegratedGradients(layer: layer, steps: steps, quadrature: quadrature,
                                                            baseline: resolved, internalBatchSize: size)
                        }
                    }
                }
            }
        case .featureAblation, .shapleyValueSampling, .kernelSHAP, .lime:
            let source = try FeatureMaskSource(reading: &reader, recording: &recorded, files: &files)
            let baseline = BaselineSpec(try baselineText())
            let perEval = try reader.int("perturbations-per-eval", default: 16)
            if perEval < 1 { throw ElucidateError(.invalidArgument, "--perturbations-per-eval must be at least 1") }
            recorded["perturbations-per-eval"] = String(perEval)
            let make = try Self.featureMethod(method, reading: &reader, recording: &recorded, perEval: perEval, seed: seed)
            prepare = { () throws(ElucidateError) -> MethodMaker in
                let masks = try source.load()
                let resolved = try baseline.load()
                return { inputs, preset throws(ElucidateError) in
                    try make(try masks.mask(for: inputs, preset: preset), resolved)
                }
            }
        }
        self.recorded = recorded
        self.inputFiles = files
    }

    /// The options of the feature-mask method `method` beyond the mask, the baseline and the
    /// batching, and the method made from a mask and a baseline.
    private static func featureMethod(
        _ method: ExplainMethod, reading reader: inout OptionReader, recording recorded: inout [String: String],
        perEval: Int, seed: UInt64
    ) throws(ElucidateError) -> @Sendable (FeatureMask, Baseline) throws(ElucidateError) -> any AttributionMethod {
        if method == .featureAblation {
            return { mask, baseline in FeatureAblation(mask: mask, baseline: baseline, perturbationsPerEval: perEval) }
        }
        recorded["seed"] = String(seed)
        let samples = try reader.int("samples", default: 25)
        recorded["samples"] = String(samples)
        switch method {
        case .shapleyValueSampling:
            if samples < 1 { throw ElucidateError(.invalidArgument, "--samples must be at least 1") }
            return { mask, baseline in
                ShapleyValueSampling(mask: mask, baseline: baseline, samples: samples, perturbationsPerEval: perEval, seed: seed)
            }
        case .kernelSHAP:
            if samples < 2 { throw ElucidateError(.invalidArgument, "--samples must be at least 2") }
            return { mask, baseline in
                KernelSHAP(mask: mask, baseline: baseline, samples: samples, perturbationsPerEval: perEval, seed: seed)
            }
        default:
            if samples < 1 { throw ElucidateError(.invalidArgument, "--samples must be at least 1") }
            let surrogateText = try reader.string("surrogate", default: "lasso")
            guard let surrogate = LIME.Surrogate(rawValue: surrogateText) else {
                throw ElucidateError(.invalidArgument, "--surrogate must be lasso or least-squares")
            }
            let alpha = try reader.double("alpha", default: 0.01)
            if !(alpha >= 0) { throw ElucidateError(.invalidArgument, "--alpha must be ≥ 0") }
            let kernelWidth = try reader.double("kernel-width", default: 1.0)
            if !(kernelWidth > 0) { throw ElucidateError(.invalidArgument, "--kernel-width must be > 0") }
            recorded["surrogate"] = surrogateText
            recorded["alpha"] = String(alpha)
            recorded["kernel-width"] = String(kernelWidth)
            return { mask, baseline in
                LIME(mask: mask, baseline: baseline, samples: samples, surrogate: surrogate, alpha: alpha,
                     kernelWidth: kernelWidth, perturbationsPerEval: perEval, seed: seed)
            }
        }
    }

    /// "C,H,W" → three positive integers.
    static func triple(_ text: String, _ option: String) throws(ElucidateError) -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ElucidateError(.invalidArgument, "\(option) must be three positive integers C,H,W, got '\(text)'")
        }
        return parts.map { $0! }
    }
}

/// GradientSHAP's own options — `samples`, `stdev`, `baselines` — as gradient-shap and
/// layer-gradient-shap both read them.
struct GradientSHAPSettings: Sendable {
    let samples: Int
    let stdev: Float
    /// A `.npy` of baselines `[B, C, H, W]` to draw from; nil for a zero image and 4 noise images.
    let baselines: String?

    /// Reads and checks the options, recording them (and `seed`, which the draws use) for the
    /// report and the baselines file among the files no output may overwrite.
    init(reading reader: inout OptionReader, recording recorded: inout [String: String], files: inout [String],
         seed: UInt64) throws(ElucidateError) {
        samples = try reader.int("samples", default: 5)
        if samples < 1 { throw ElucidateError(.invalidArgument, "--samples must be at least 1") }
        stdev = try reader.float("stdev", default: 0)
        if !(stdev >= 0) || !stdev.isFinite { throw ElucidateError(.invalidArgument, "--stdev must be a number ≥ 0") }
        baselines = try reader.string("baselines")
        recorded["samples"] = String(samples)
        recorded["stdev"] = String(stdev)
        recorded["seed"] = String(seed)
        if let baselines {
            recorded["baselines"] = baselines
            files.append(baselines)
        }
    }

    /// The baseline distribution, reading the baselines file if one is named.
    func distribution() throws(ElucidateError) -> GradientSHAP.Baselines {
        guard let baselines else { return .zeroAndNoise(noiseImages: 4) }
        return .tensor(try NPY.readFiniteFloat32(URL(fileURLWithPath: baselines), what: "the baselines"))
    }
}

/// A `--baseline`: `zero`, a number, or the path of a `.npy` of the input's shape.
struct BaselineSpec: Sendable {
    let text: String

    init(_ text: String) { self.text = text }

    /// The file it names, if it names one.
    var files: [String] { text == "zero" || Float(text) != nil ? [] : [text] }

    /// The baseline, reading its file if it names one.
    func load() throws(ElucidateError) -> Baseline {
        if text == "zero" { return .zero }
        if let value = Float(text) { return .constant(value) }
        return .tensor(try NPY.readFiniteFloat32(URL(fileURLWithPath: text), what: "the baseline"))
    }
}

/// Where a feature-mask method's mask comes from: a file, an N×N grid, or SLIC superpixels
/// of each batch.
enum FeatureMaskSource: Sendable {
    case file(String)
    case grid(cells: Int)
    case superpixels(segments: Int, compactness: Double)

    /// Reads `--feature-mask`, `--grid` or `--superpixels` (exactly one) and `--compactness`.
    init(reading reader: inout OptionReader, recording recorded: inout [String: String],
         files: inout [String]) throws(ElucidateError) {
        let file = try reader.string("feature-mask")
        let grid = try reader.int("grid")
        let superpixels = try reader.int("superpixels")
        let compactness = try reader.double("compactness")
        if [file != nil, grid != nil, superpixels != nil].filter({ $0 }).count != 1 {
            throw ElucidateError(.invalidArgument, "give exactly one of --feature-mask, --grid and --superpixels")
        }
        if let grid, grid < 1 { throw ElucidateError(.invalidArgument, "--grid must be at least 1") }
        if let superpixels, superpixels < 1 { throw ElucidateError(.invalidArgument, "--superpixels must be at least 1") }
        if let compactness {
            if superpixels == nil { throw ElucidateError(.invalidArgument, "--compactness applies only to --superpixels") }
            if !(compactness > 0) || !compactness.isFinite {
                throw ElucidateError(.invalidArgument, "--compactness must be a number > 0")
            }
        }
        if let file {
            recorded["feature-mask"] = file
            files.append(file)
            self = .file(file)
        } else if let grid {
            recorded["grid"] = String(grid)
            self = .grid(cells: grid)
        } else {
            let segments = superpixels!  // exactly one of the three was given
            let weight = compactness ?? 10
            recorded["superpixels"] = String(segments)
            recorded["compactness"] = String(weight)
            self = .superpixels(segments: segments, compactness: weight)
        }
    }

    /// The source with a mask file read.
    func load() throws(ElucidateError) -> LoadedFeatureMaskSource {
        switch self {
        case .file(let path):
            let file = try NPY.readInt32(URL(fileURLWithPath: path))
            return .mask(try FeatureMask(shape: file.shape, ids: file.values))
        case .grid(let cells): return .grid(cells: cells)
        case .superpixels(let segments, let compactness): return .superpixels(segments: segments, compactness: compactness)
        }
    }
}

/// A feature-mask source whose file, if any, has been read.
enum LoadedFeatureMaskSource: Sendable {
    case mask(FeatureMask)
    case grid(cells: Int)
    case superpixels(segments: Int, compactness: Double)

    /// The mask for the batch `inputs` `[N, C, H, W]`, normalised by `preset`.
    func mask(for inputs: Tensor, preset: PreprocessingPreset) throws(ElucidateError) -> FeatureMask {
        switch self {
        case .mask(let mask):
            mask
        case .grid(let cells):
            try FeatureMask.grid(cells, height: inputs.shape[2], width: inputs.shape[3])
        case .superpixels(let segments, let compactness):
            try FeatureMask.superpixels(of: inputs, preset: preset, segments: segments, compactness: compactness)
        }
    }
}
