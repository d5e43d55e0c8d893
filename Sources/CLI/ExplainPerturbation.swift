import ArgumentParser
import Elucidate
import Foundation

// The perturbation methods; like the gradient methods (ExplainMethods.swift), each hands its
// options to the library by their command-line names.

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

    var options: Options {
        var options = Options(["window": .string(window), "stride": .string(stride), "baseline": .string(baseline),
                               "evaluation": .string(evaluation)])
        if let perturbationsPerEval { options["perturbations-per-eval"] = .number(Double(perturbationsPerEval)) }
        return options
    }
    func validate() throws { try common.check(.occlusion, options) }
    func run() throws { try common.run(.occlusion, options) }
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

    /// These options for the library, with the method's own `extra`.
    func options(_ extra: [String: OptionValue] = [:]) -> Options {
        var options = Options(["baseline": .string(baseline), "perturbations-per-eval": .number(Double(perturbationsPerEval))])
        if let featureMask { options["feature-mask"] = .string(featureMask) }
        if let grid { options["grid"] = .number(Double(grid)) }
        if let superpixels { options["superpixels"] = .number(Double(superpixels)) }
        if let compactness { options["compactness"] = .number(compactness) }
        return options.merging(Options(extra))
    }
}

struct ExplainFeatureAblation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feature-ablation", abstract: "Feature ablation over groups of pixels (Captum's FeatureAblation).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions

    func validate() throws { try common.check(.featureAblation, features.options()) }
    func run() throws { try common.run(.featureAblation, features.options()) }
}

struct ExplainShapleyValueSampling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shapley-value-sampling", abstract: "Shapley values estimated from random feature orders (Captum's ShapleyValueSampling).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions
    @Option(name: .long, help: "Random feature orders.")
    var samples: Int = 25

    var options: Options { features.options(["samples": .number(Double(samples))]) }
    func validate() throws { try common.check(.shapleyValueSampling, options) }
    func run() throws { try common.run(.shapleyValueSampling, options) }
}

struct ExplainKernelSHAP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel-shap", abstract: "Kernel SHAP: Shapley-kernel coalitions and a weighted linear regression (Captum's KernelShap).")
    @OptionGroup var common: ExplainOptions
    @OptionGroup var features: FeatureMaskOptions
    @Option(name: .long, help: "Coalitions evaluated per input.")
    var samples: Int = 25

    var options: Options { features.options(["samples": .number(Double(samples))]) }
    func validate() throws { try common.check(.kernelSHAP, options) }
    func run() throws { try common.run(.kernelSHAP, options) }
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

    var options: Options {
        features.options(["samples": .number(Double(samples)), "surrogate": .string(surrogate), "alpha": .number(alpha),
                          "kernel-width": .number(kernelWidth)])
    }
    func validate() throws { try common.check(.lime, options) }
    func run() throws { try common.run(.lime, options) }
}
