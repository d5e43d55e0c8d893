import ArgumentParser
import Elucidate
import Foundation

struct ExplainOcclusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "occlusion", abstract: "Occlusion: slide a baseline window over the input (Captum's Occlusion).")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "Window extent C,H,W.")
    var window: String = "3,15,15"
    @Option(name: .long, help: "Step between windows C,H,W.")
    var stride: String = "3,8,8"
    @Option(name: .long, help: "Baseline: zero (default), a number, or a .npy of the input's shape.")
    var baseline: String = "zero"
    @Option(name: .customLong("perturbations-per-eval"),
            help: "Occluded copies per forward pass (default: 64 with incremental evaluation, 16 with full).")
    var perturbationsPerEval: Int?
    @Option(name: .long, help: "incremental (default: recompute only what each window can change; exact) or full.")
    var evaluation: String = "incremental"

    func validate() throws {
        _ = try parseTriple(window, "--window")
        _ = try parseTriple(stride, "--stride")
        if let perturbationsPerEval, perturbationsPerEval < 1 { throw ValidationError("--perturbations-per-eval must be at least 1") }
        if !["incremental", "full"].contains(evaluation) { throw ValidationError("--evaluation must be incremental or full") }
    }

    func run() throws {
        let method = Occlusion(window: try parseTriple(window, "--window"), stride: try parseTriple(stride, "--stride"),
                               baseline: try parseBaseline(baseline), perturbationsPerEval: perturbationsPerEval,
                               evaluation: evaluation == "full" ? .full : .incremental)
        try common.run(name: "occlusion",
                       options: ["window": window, "stride": stride, "baseline": baseline,
                                 "perturbations-per-eval": String(method.perturbationsPerEval), "evaluation": evaluation],
                       inputs: baselineFiles(baseline)) { inputs, _ in
            _ = try method.windowCount(rowShape: Array(inputs.shape.dropFirst()))  // bad geometry refused before any work
            return method
        }
    }
}

struct ExplainFeatureAblation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feature-ablation", abstract: "Feature ablation over groups of pixels (Captum's FeatureAblation).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions

    func run() throws {
        try features.run(common, name: "feature-ablation", options: [:]) { mask, baseline in
            FeatureAblation(mask: mask, baseline: baseline, perturbationsPerEval: features.perturbationsPerEval)
        }
    }
}

struct ExplainShapleyValueSampling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shapley-value-sampling", abstract: "Shapley values estimated from random feature orders (Captum's ShapleyValueSampling).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions
    @Option(name: .long, help: "Random feature orders.")
    var samples: Int = 25

    func validate() throws {
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
    }

    func run() throws {
        let seed = common.seed ?? SeededRandom.randomSeed()
        try features.run(common, name: "shapley-value-sampling", options: ["samples": String(samples)], seed: seed) {
            mask, baseline in
            ShapleyValueSampling(mask: mask, baseline: baseline, samples: samples,
                                 perturbationsPerEval: features.perturbationsPerEval, seed: seed)
        }
    }
}

/// The options every feature-group method shares: the mask, the baseline, batching.
struct FeatureMaskOptions: ParsableArguments {
    @Option(name: .customLong("feature-mask"), help: "An int32 .npy of feature ids broadcastable to the input, e.g. (1,1,H,W).")
    var featureMask: String?
    @Option(name: .long, help: "Split the image into N×N equal cells.")
    var grid: Int?
    @Option(name: .long, help: "Split each image into about N SLIC superpixels (scikit-image's slic, as LIME users do).")
    var superpixels: Int?
    @Option(name: .long, help: "With --superpixels: weight of space against colour; higher gives squarer regions (default 10).")
    var compactness: Double?
    @Option(name: .long, help: "Baseline: zero (default), a number, or a .npy of the input's shape.")
    var baseline: String = "zero"
    @Option(name: .customLong("perturbations-per-eval"), help: "Evaluations per forward pass.")
    var perturbationsPerEval: Int = 16

    func validate() throws {
        if [featureMask != nil, grid != nil, superpixels != nil].filter({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --feature-mask, --grid and --superpixels")
        }
        if let grid, grid < 1 { throw ValidationError("--grid must be at least 1") }
        if let superpixels, superpixels < 1 { throw ValidationError("--superpixels must be at least 1") }
        if let compactness {
            if superpixels == nil { throw ValidationError("--compactness applies only to --superpixels") }
            if !(compactness > 0) || !compactness.isFinite { throw ValidationError("--compactness must be a number > 0") }
        }
        if perturbationsPerEval < 1 { throw ValidationError("--perturbations-per-eval must be at least 1") }
    }

    /// Runs the feature-group method `name` made by `make(mask, baseline)` for each input batch:
    /// records these options and `options` (and `seed`, for a sampling method, which the run then
    /// uses) and builds the mask from each batch.
    func run<Method: AttributionMethod>(
        _ common: ExplainOptions, name: String, options: [String: String], seed: UInt64? = nil,
        _ make: (FeatureMask, Baseline) throws -> Method
    ) throws {
        var options = options
        if let seed { options["seed"] = String(seed) }
        let masks = try source(options: &options)
        let baseline = try parseBaseline(self.baseline)
        var common = common
        if let seed { common.seed = seed }
        try common.run(name: name, options: options, inputs: inputFiles) { inputs, preset in
            try make(try masks.mask(for: inputs, preset: preset), baseline)
        }
    }

    /// The files these options read (the mask, a baseline), which no output may overwrite.
    var inputFiles: [String] { (featureMask.map { [$0] } ?? []) + baselineFiles(baseline) }

    /// Where the mask comes from (a mask file is read now), with the options recorded in `options`.
    func source(options: inout [String: String]) throws -> FeatureMaskSource {
        options["baseline"] = baseline
        options["perturbations-per-eval"] = String(perturbationsPerEval)
        if let featureMask {
            let file = try NPY.readInt32(URL(fileURLWithPath: featureMask))
            options["feature-mask"] = featureMask
            return .file(try FeatureMask(shape: file.shape, ids: file.values))
        }
        if let grid {
            options["grid"] = String(grid)
            return .grid(cells: grid)
        }
        let segments = superpixels!  // validate() leaves no other case
        let compactness = self.compactness ?? 10
        options["superpixels"] = String(segments)
        options["compactness"] = String(compactness)
        return .superpixels(segments: segments, compactness: compactness)
    }
}

/// The feature mask of a run: read from a file, or made from each input batch once the run
/// has loaded it.
enum FeatureMaskSource {
    case file(FeatureMask)
    case grid(cells: Int)
    case superpixels(segments: Int, compactness: Double)

    /// The mask for the batch `inputs` `[N, C, H, W]`, normalised by `preset`.
    func mask(for inputs: Tensor, preset: PreprocessingPreset) throws(ElucidateError) -> FeatureMask {
        switch self {
        case .file(let mask):
            mask
        case .grid(let cells):
            try FeatureMask.grid(cells, height: inputs.shape[2], width: inputs.shape[3])
        case .superpixels(let segments, let compactness):
            try FeatureMask.superpixels(of: inputs, preset: preset, segments: segments, compactness: compactness)
        }
    }
}

struct ExplainKernelSHAP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel-shap", abstract: "Kernel SHAP: Shapley-kernel coalitions and a weighted linear regression (Captum's KernelShap).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions
    @Option(name: .long, help: "Coalitions evaluated per input.")
    var samples: Int = 25

    func validate() throws {
        if samples < 2 { throw ValidationError("--samples must be at least 2") }
    }

    func run() throws {
        let seed = common.seed ?? SeededRandom.randomSeed()
        try features.run(common, name: "kernel-shap", options: ["samples": String(samples)], seed: seed) {
            mask, baseline in
            KernelSHAP(mask: mask, baseline: baseline, samples: samples,
                       perturbationsPerEval: features.perturbationsPerEval, seed: seed)
        }
    }
}

struct ExplainLIME: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lime", abstract: "LIME: a weighted linear surrogate of random feature subsets (Captum's Lime).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions
    @Option(name: .long, help: "Perturbed samples per input (Captum's default, 25).")
    var samples: Int = 25
    @Option(name: .long, help: "lasso (default, alpha --alpha) or least-squares.")
    var surrogate: String = "lasso"
    @Option(name: .long, help: "Lasso penalty.")
    var alpha: Double = 0.01
    @Option(name: .customLong("kernel-width"), help: "Width of the exponential cosine-distance kernel.")
    var kernelWidth: Double = 1.0

    func validate() throws {
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if LIME.Surrogate(rawValue: surrogate) == nil { throw ValidationError("--surrogate must be lasso or least-squares") }
        if !(alpha >= 0) { throw ValidationError("--alpha must be ≥ 0") }
        if !(kernelWidth > 0) { throw ValidationError("--kernel-width must be > 0") }
    }

    func run() throws {
        let seed = common.seed ?? SeededRandom.randomSeed()
        let options = ["samples": String(samples), "surrogate": surrogate, "alpha": String(alpha),
                       "kernel-width": String(kernelWidth)]
        try features.run(common, name: "lime", options: options, seed: seed) { mask, baseline in
            LIME(mask: mask, baseline: baseline, samples: samples, surrogate: LIME.Surrogate(rawValue: surrogate)!,
                 alpha: alpha, kernelWidth: kernelWidth, perturbationsPerEval: features.perturbationsPerEval, seed: seed)
        }
    }
}

/// "C,H,W" → three positive integers.
func parseTriple(_ text: String, _ option: String) throws -> [Int] {
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ValidationError("\(option) must be three positive integers C,H,W, got '\(text)'")
    }
    return parts.map { $0! }
}
