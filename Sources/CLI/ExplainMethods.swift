import ArgumentParser
import Elucidate
import Foundation

// The gradient methods. Each subcommand declares its options for the command line (help,
// types) and hands them to the library as `Options` by the same names: the library checks
// them (in `validate()`, through `ExplainOptions.check`) and runs them.

/// `--internal-batch-size`, in every method's options.
private func batchOption(_ size: Int) -> [String: OptionValue] { ["internal-batch-size": .number(Double(size))] }

struct ExplainSaliency: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "saliency", abstract: "Gradient magnitude (Captum's Saliency).")
    @OptionGroup var common: ExplainOptions
    @Flag(name: .long, help: "Keep the gradient's sign instead of its absolute value.")
    var signed = false
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    var options: Options { Options(batchOption(internalBatchSize).merging(["signed": .bool(signed)]) { $1 }) }
    func validate() throws { try common.check(.saliency, options) }
    func run() throws { try common.run(.saliency, options) }
}

struct ExplainInputXGradient: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "input-x-gradient", abstract: "Input times gradient.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    var options: Options { Options(batchOption(internalBatchSize)) }
    func validate() throws { try common.check(.inputXGradient, options) }
    func run() throws { try common.run(.inputXGradient, options) }
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

    var options: Options {
        Options(batchOption(internalBatchSize).merging(
            ["steps": .number(Double(steps)), "quadrature": .string(quadrature.rawValue), "baseline": .string(baseline)]) { $1 })
    }
    func validate() throws { try common.check(.integratedGradients, options) }
    func run() throws { try common.run(.integratedGradients, options) }
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

    var options: Options {
        var options = Options(batchOption(internalBatchSize).merging(
            ["samples": .number(Double(samples)), "stdev": .number(Double(stdev))]) { $1 })
        if let baselines { options["baselines"] = .string(baselines) }
        return options
    }
    func validate() throws { try common.check(.gradientSHAP, options) }
    func run() throws { try common.run(.gradientSHAP, options) }
}

struct ExplainGuidedBackprop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "guided-backprop", abstract: "Guided backpropagation.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    var options: Options { Options(batchOption(internalBatchSize)) }
    func validate() throws { try common.check(.guidedBackprop, options) }
    func run() throws { try common.run(.guidedBackprop, options) }
}

struct ExplainDeconvolution: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deconvolution", abstract: "Deconvolution.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per forward/backward pass.")
    var internalBatchSize: Int = 16

    var options: Options { Options(batchOption(internalBatchSize)) }
    func validate() throws { try common.check(.deconvolution, options) }
    func run() throws { try common.run(.deconvolution, options) }
}

extension Quadrature: ExpressibleByArgument {}

struct ExplainDeepLift: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deeplift", abstract: "DeepLIFT with the Rescale rule.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "Baseline: zero (default), a number, or a .npy of the input's shape.")
    var baseline: String = "zero"
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per pass (each pass also runs their baselines).")
    var internalBatchSize: Int = 8

    var options: Options { Options(batchOption(internalBatchSize).merging(["baseline": .string(baseline)]) { $1 }) }
    func validate() throws { try common.check(.deepLift, options) }
    func run() throws { try common.run(.deepLift, options) }
}

struct ExplainDeepLiftSHAP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deeplift-shap", abstract: "DeepLIFT averaged over a set of baselines.")
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "A .npy of baselines (B,3,H,W).")
    var baselines: String
    @Option(name: .customLong("internal-batch-size"), help: "Input-baseline pairs per pass.")
    var internalBatchSize: Int = 8

    var options: Options { Options(batchOption(internalBatchSize).merging(["baselines": .string(baselines)]) { $1 }) }
    func validate() throws { try common.check(.deepLiftSHAP, options) }
    func run() throws { try common.run(.deepLiftSHAP, options) }
}
