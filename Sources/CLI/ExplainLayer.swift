import ArgumentParser
import Elucidate
import Foundation

// The layer methods (Captum's `captum.attr` Layer* classes). Like the other subcommands, each
// declares its options for the command line and hands them to the library by name; the
// attributions have the layer's shape, not the input's.

/// The layer a method reads, by PyTorch module path, and whether its input is meant instead
/// of its output.
struct LayerNameOptions: ParsableArguments {
    @Option(name: .long, help: "The layer, by PyTorch module path: layer4, layer3.5, layer4.2.conv2, fastai's 0.7 … ('elucidate models --layers MODEL' lists them).")
    var layer: String = ""
    @Flag(name: .customLong("layer-input"), help: "Attribute to the layer's input instead of its output (Captum's attribute_to_layer_input).")
    var layerInput = false

    var options: Options { Options(["layer": .string(layer), "layer-input": .bool(layerInput)]) }
}

/// What most layer methods take: the layer, and the inputs per pass.
struct LayerOptions: ParsableArguments {
    @OptionGroup var name: LayerNameOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs (or path points) per forward/backward pass.")
    var internalBatchSize: Int = 16

    var options: Options { name.options.merging(Options(["internal-batch-size": .number(Double(internalBatchSize))])) }
}

/// An input baseline given as text: `zero`, a number, or a `.npy` of the input's shape.
struct InputBaselineOptions: ParsableArguments {
    @Option(name: .long, help: "Input baseline: zero (default), a number, or a .npy of the input's shape.")
    var baseline: String = "zero"

    var options: Options { Options(["baseline": .string(baseline)]) }
}

/// The path options of the integrating layer and neuron methods.
struct PathOptions: ParsableArguments {
    @Option(name: .long, help: "Points on the path from the baseline to the input.")
    var steps: Int = 50
    @Option(name: .long, help: "gausslegendre, riemann-left, riemann-right, riemann-middle or riemann-trapezoid.")
    var quadrature: Quadrature = .gaussLegendre
    @OptionGroup var baseline: InputBaselineOptions

    var options: Options {
        Options(["steps": .number(Double(steps)), "quadrature": .string(quadrature.rawValue)]).merging(baseline.options)
    }
}

/// The unit a neuron method explains.
struct NeuronOptions: ParsableArguments {
    @Option(name: .long, help: "The unit of the layer: C,H,W for a feature map, K for a 2-D layer.")
    var neuron: String = ""

    var options: Options { neuron.isEmpty ? Options() : Options(["neuron": .string(neuron)]) }
}

extension LayerInterpolation: ExpressibleByArgument {}

struct ExplainLayerActivation: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-activation",
                                                    abstract: "A layer's activation (Captum's LayerActivation).")
    static let method = ExplainMethod.layerActivation
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    var options: Options { layer.options }
}

struct ExplainLayerGradientXActivation: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-gradient-x-activation",
                                                    abstract: "A layer's gradient times its activation (Captum's LayerGradientXActivation).")
    static let method = ExplainMethod.layerGradientXActivation
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    var options: Options { layer.options }
}

struct ExplainGradCAM: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "grad-cam",
                                                    abstract: "Grad-CAM of a layer, (N,1,h,w) (Captum's LayerGradCam).")
    static let method = ExplainMethod.gradCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @Flag(name: .customLong("relu-attributions"), help: "Apply a ReLU to the map (Captum's relu_attributions).")
    var reluAttributions = false
    @Option(name: .long, help: "Resize the map to the input's H,W: bilinear or nearest (Captum's LayerAttribution.interpolate).")
    var upsample: LayerInterpolation?

    var options: Options {
        var options = layer.options.merging(Options(["relu-attributions": .bool(reluAttributions)]))
        if let upsample { options["upsample"] = .string(upsample.rawValue) }
        return options
    }
}

struct ExplainLayerIntegratedGradients: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-integrated-gradients",
                                                    abstract: "Integrated Gradients in a layer's space (Captum's LayerIntegratedGradients).")
    static let method = ExplainMethod.layerIntegratedGradients
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var path: PathOptions
    var options: Options { layer.options.merging(path.options) }
}

struct ExplainLayerConductance: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-conductance",
                                                    abstract: "Integrated Gradients' flow through each unit of a layer (Captum's LayerConductance).")
    static let method = ExplainMethod.layerConductance
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var path: PathOptions
    var options: Options { layer.options.merging(path.options) }
}

struct ExplainInternalInfluence: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "internal-influence",
                                                    abstract: "A layer's gradient integrated along the input path (Captum's InternalInfluence).")
    static let method = ExplainMethod.internalInfluence
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var path: PathOptions
    var options: Options { layer.options.merging(path.options) }
}

struct ExplainGuidedGradCAM: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "guided-grad-cam",
                                                    abstract: "Guided backpropagation times the upsampled Grad-CAM map, (N,3,H,W) (Captum's GuidedGradCam).")
    static let method = ExplainMethod.guidedGradCAM
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @Option(name: .long, help: "How the Grad-CAM map is resized to the input: nearest (default) or bilinear.")
    var upsample: LayerInterpolation = .nearest
    var options: Options { layer.options.merging(Options(["upsample": .string(upsample.rawValue)])) }
}

struct ExplainNeuronGradient: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "neuron-gradient",
                                                    abstract: "The gradient of one unit of a layer (Captum's NeuronGradient).")
    static let method = ExplainMethod.neuronGradient
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var neuron: NeuronOptions
    var options: Options { layer.options.merging(neuron.options) }
}

struct ExplainNeuronGuidedBackprop: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "neuron-guided-backprop",
                                                    abstract: "Guided backpropagation of one unit of a layer (Captum's NeuronGuidedBackprop).")
    static let method = ExplainMethod.neuronGuidedBackprop
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var neuron: NeuronOptions
    var options: Options { layer.options.merging(neuron.options) }
}

struct ExplainNeuronIntegratedGradients: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "neuron-integrated-gradients",
                                                    abstract: "Integrated Gradients of one unit of a layer (Captum's NeuronIntegratedGradients).")
    static let method = ExplainMethod.neuronIntegratedGradients
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var neuron: NeuronOptions
    @OptionGroup var path: PathOptions
    var options: Options { layer.options.merging(neuron.options).merging(path.options) }
}

struct ExplainNeuronConductance: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "neuron-conductance",
                                                    abstract: "Integrated Gradients flowing through one unit of a layer (Captum's NeuronConductance).")
    static let method = ExplainMethod.neuronConductance
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @OptionGroup var neuron: NeuronOptions
    @OptionGroup var path: PathOptions
    var options: Options { layer.options.merging(neuron.options).merging(path.options) }
}

struct ExplainLayerDeepLift: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-deeplift",
                                                    abstract: "DeepLIFT (Rescale) of a layer (Captum's LayerDeepLift).")
    static let method = ExplainMethod.layerDeepLift
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerNameOptions
    @OptionGroup var baseline: InputBaselineOptions
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per pass (each pass also runs their baselines).")
    var internalBatchSize: Int = 8

    var options: Options {
        layer.options.merging(baseline.options).merging(Options(["internal-batch-size": .number(Double(internalBatchSize))]))
    }
}

struct ExplainLayerFeatureAblation: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-feature-ablation",
                                                    abstract: "Groups of a layer's units set to a baseline in turn (Captum's LayerFeatureAblation).")
    static let method = ExplainMethod.layerFeatureAblation
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerNameOptions
    @Option(name: .customLong("layer-mask"), help: "int32 .npy of group ids broadcastable to the layer's shape (default: every unit alone).")
    var layerMask: String?
    @Option(name: .long, help: "The value ablated units take.")
    var baseline: Float = 0
    @Option(name: .customLong("perturbations-per-eval"), help: "Ablated copies per forward pass.")
    var perturbationsPerEval: Int = 1

    var options: Options {
        var options = layer.options.merging(Options(["baseline": .number(Double(baseline)),
                                                     "perturbations-per-eval": .number(Double(perturbationsPerEval))]))
        if let layerMask { options["layer-mask"] = .string(layerMask) }
        return options
    }
}

struct ExplainLayerGradientSHAP: MethodSubcommand {
    static let configuration = CommandConfiguration(commandName: "layer-gradient-shap",
                                                    abstract: "GradientSHAP at a layer (Captum's LayerGradientShap).")
    static let method = ExplainMethod.layerGradientSHAP
    @OptionGroup var common: ExplainOptions
    @OptionGroup var layer: LayerOptions
    @Option(name: .long, help: "Random draws per input.")
    var samples: Int = 5
    @Option(name: .long, help: "Standard deviation of Gaussian noise added to the input.")
    var stdev: Float = 0
    @Option(name: .long, help: "A .npy of baselines (B,3,H,W) to draw from (default: a zero image and 4 noise images).")
    var baselines: String?

    var options: Options {
        var options = layer.options.merging(Options(["samples": .number(Double(samples)), "stdev": .number(Double(stdev))]))
        if let baselines { options["baselines"] = .string(baselines) }
        return options
    }
}
