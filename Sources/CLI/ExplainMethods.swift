import ArgumentParser
import Elucidate
import Foundation

struct ExplainSaliency: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "saliency", abstract: "Gradient magnitude (Captum's Saliency).")
    @OptionGroup var common: ExplainOptions
    @Flag(name: .long, help: "Keep the gradient's sign instead of its absolute value.")
    var signed = false
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    func run() throws {
        try common.run(Saliency(signed: signed, batchSize: internalBatchSize), name: "saliency",
                       options: ["signed": String(signed)])
    }
}

struct ExplainInputXGradient: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "input-x-gradient", abstract: "Input times gradient.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    func run() throws {
        try common.run(InputXGradient(batchSize: internalBatchSize), name: "input-x-gradient", options: [:])
    }
}

struct ExplainIntegratedGradients: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "integrated-gradients", abstract: "Integrated Gradients.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "Points on the path from the baseline to the input.")
    var steps: Int = 50
    @Option(name: .long, help: "gausslegendre, riemann-left, riemann-right, riemann-middle or riemann-trapezoid.")
    var quadrature: Quadrature = .gaussLegendre
    @Option(name: .long, help: "Baseline: zero (default), a number, or a .npy of the input's shape.")
    var baseline: String = "zero"
    @Option(name: .customLong("internal-batch-size"), help: "Path points per forward/backward pass.")
    var internalBatchSize: Int = 16

    func validate() throws {
        if steps < quadrature.minimumSteps {
            throw ValidationError("--steps must be at least \(quadrature.minimumSteps) for \(quadrature.rawValue)")
        }
        if internalBatchSize < 1 { throw ValidationError("--internal-batch-size must be at least 1") }
    }

    func run() throws {
        let method = IntegratedGradients(steps: steps, quadrature: quadrature, baseline: try parseBaseline(baseline),
                                         internalBatchSize: internalBatchSize)
        try common.run(method, name: "integrated-gradients",
                       options: ["steps": String(steps), "quadrature": quadrature.rawValue, "baseline": baseline],
                       inputs: baselineFiles(baseline))
    }
}

struct ExplainGradientSHAP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gradient-shap", abstract: "GradientSHAP.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "Random draws per input.")
    var samples: Int = 5
    @Option(name: .long, help: "Standard deviation of Gaussian noise added to the input.")
    var stdev: Float = 0
    @Option(name: .long, help: "A .npy of baselines (B,3,H,W) to draw from (default: a zero image and 4 noise images).")
    var baselines: String?
    @Option(name: .customLong("internal-batch-size"), help: "Draws per forward/backward pass.")
    var internalBatchSize: Int = 16

    func validate() throws {
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if !(stdev >= 0) || !stdev.isFinite { throw ValidationError("--stdev must be a number ≥ 0") }
    }

    func run() throws {
        let distribution: GradientSHAP.Baselines
        if let baselines {
            distribution = .tensor(try NPY.readFiniteFloat32(URL(fileURLWithPath: baselines), what: "the baselines"))
        } else {
            distribution = .zeroAndNoise(noiseImages: 4)
        }
        let seed = common.seed ?? SeededRandom.randomSeed()
        var options = ["samples": String(samples), "stdev": String(stdev), "seed": String(seed)]
        if let baselines { options["baselines"] = baselines }
        var withSeed = common
        withSeed.seed = seed
        try withSeed.run(GradientSHAP(samples: samples, stdev: stdev, baselines: distribution, batchSize: internalBatchSize, seed: seed),
                         name: "gradient-shap", options: options, inputs: baselines.map { [$0] } ?? [])
    }
}

struct ExplainGuidedBackprop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "guided-backprop", abstract: "Guided backpropagation.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    func run() throws {
        try common.run(ModifiedGradient(.guidedBackprop, batchSize: internalBatchSize), name: "guided-backprop", options: [:])
    }
}

struct ExplainDeconvolution: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deconvolution", abstract: "Deconvolution.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    func run() throws {
        try common.run(ModifiedGradient(.deconvolution, batchSize: internalBatchSize), name: "deconvolution", options: [:])
    }
}

/// `zero`, a number, or a path to a `.npy` tensor.
func parseBaseline(_ text: String) throws(ElucidateError) -> Baseline {
    if text == "zero" { return .zero }
    if let value = Float(text) { return .constant(value) }
    return .tensor(try NPY.readFiniteFloat32(URL(fileURLWithPath: text), what: "the baseline"))
}

/// The file a `--baseline` names, if it names one (for the inputs no output may overwrite).
func baselineFiles(_ text: String) -> [String] {
    text == "zero" || Float(text) != nil ? [] : [text]
}

extension Quadrature: ExpressibleByArgument {}

struct ExplainDeepLift: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deeplift", abstract: "DeepLIFT with the Rescale rule.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "Baseline: zero (default), a number, or a .npy of the input's shape.")
    var baseline: String = "zero"
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per pass (each pass also runs their baselines).")
    var internalBatchSize: Int = 8

    func run() throws {
        try common.run(DeepLift(baseline: try parseBaseline(baseline), batchSize: internalBatchSize), name: "deeplift",
                       options: ["baseline": baseline], inputs: baselineFiles(baseline))
    }
}

struct ExplainDeepLiftSHAP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deeplift-shap", abstract: "DeepLIFT averaged over a set of baselines.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "A .npy of baselines (B,3,H,W).")
    var baselines: String
    @Option(name: .customLong("internal-batch-size"), help: "Input-baseline pairs per pass.")
    var internalBatchSize: Int = 8

    func run() throws {
        let distribution = try NPY.readFiniteFloat32(URL(fileURLWithPath: baselines), what: "the baselines")
        try common.run(DeepLiftSHAP(baselines: distribution, batchSize: internalBatchSize), name: "deeplift-shap",
                       options: ["baselines": baselines], inputs: [baselines])
    }
}
