import ArgumentParser
import Elucidate
import Foundation

// pytorch-grad-cam's CAM family beside grad-cam. Each writes the RAW map (N,1,h,w) at the
// layer's resolution with --attributions, before pytorch-grad-cam's ReLU, min-max scaling and
// resize (the library's CAMPostprocessing.final applies those).

/// One CAM subcommand: the layer and, for Score-CAM and Ablation-CAM, the copies per forward pass.
protocol CAMCommand: MethodSubcommand {
    var layer: LayerOptions { get }
    var batchOptions: Options { get }
}

extension CAMCommand {
    var batchOptions: Options { Options() }
    var options: Options { layer.options.merging(batchOptions) }
}

struct ExplainGradCAMPlusPlus: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "grad-cam-plus-plus",
                                                    abstract: "Grad-CAM++ of a layer, the raw map (N,1,h,w) (pytorch-grad-cam's GradCAMPlusPlus).")
    static let method = ExplainMethod.gradCAMPlusPlus
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
}

struct ExplainXGradCAM: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "xgrad-cam",
                                                    abstract: "XGrad-CAM of a layer, the raw map (N,1,h,w) (pytorch-grad-cam's XGradCAM).")
    static let method = ExplainMethod.xgradCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
}

struct ExplainHiResCAM: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "hires-cam",
                                                    abstract: "HiResCAM of a layer, the raw map (N,1,h,w) (pytorch-grad-cam's HiResCAM).")
    static let method = ExplainMethod.hiResCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
}

struct ExplainLayerCAM: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "layer-cam",
                                                    abstract: "LayerCAM of a layer, the raw map (N,1,h,w) (pytorch-grad-cam's LayerCAM).")
    static let method = ExplainMethod.layerCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
}

struct ExplainEigenCAM: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "eigen-cam",
                                                    abstract: "EigenCAM of a layer (first principal component, sign arbitrary), the raw map (N,1,h,w) (pytorch-grad-cam's EigenCAM).")
    static let method = ExplainMethod.eigenCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
}

struct ExplainScoreCAM: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "score-cam",
                                                    abstract: "Score-CAM of a layer, the raw map (N,1,h,w) (pytorch-grad-cam's ScoreCAM).")
    static let method = ExplainMethod.scoreCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @Option(name: .customLong("batch-size"), help: "Masked copies of the input per forward pass (pytorch-grad-cam's default 16).")
    var batchSize: Int = 16
    var batchOptions: Options { Options(["batch-size": .number(Double(batchSize))]) }
}

struct ExplainAblationCAM: CAMCommand {
    static let configuration = CommandConfiguration(commandName: "ablation-cam",
                                                    abstract: "Ablation-CAM of a layer, the raw map (N,1,h,w) (pytorch-grad-cam's AblationCAM).")
    static let method = ExplainMethod.ablationCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @Option(name: .customLong("batch-size"), help: "Ablated copies of the layer per forward pass (pytorch-grad-cam's default 32).")
    var batchSize: Int = 32
    var batchOptions: Options { Options(["batch-size": .number(Double(batchSize))]) }
}

/// The CAM subcommands, in the order `elucidate explain --help` lists them.
let camSubcommands: [any ParsableCommand.Type] = [
    ExplainGradCAMPlusPlus.self, ExplainXGradCAM.self, ExplainHiResCAM.self, ExplainLayerCAM.self,
    ExplainEigenCAM.self, ExplainScoreCAM.self, ExplainAblationCAM.self,
]
