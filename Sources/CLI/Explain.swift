import ArgumentParser
import Elucidate
import Foundation

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attribute a prediction to the input pixels and write the attributions as .npy.",
        subcommands: [
            ExplainSaliency.self, ExplainInputXGradient.self, ExplainIntegratedGradients.self, ExplainGradientSHAP.self,
            ExplainDeepLift.self, ExplainDeepLiftSHAP.self, ExplainGuidedBackprop.self, ExplainDeconvolution.self,
            ExplainOcclusion.self, ExplainFeatureAblation.self, ExplainShapleyValueSampling.self,
            ExplainKernelSHAP.self, ExplainLIME.self,
            ExplainLayerActivation.self, ExplainLayerGradientXActivation.self, ExplainGradCAM.self,
            ExplainLayerIntegratedGradients.self, ExplainLayerConductance.self, ExplainInternalInfluence.self,
            ExplainGuidedGradCAM.self, ExplainNeuronGradient.self, ExplainNeuronGuidedBackprop.self,
            ExplainNeuronIntegratedGradients.self, ExplainNeuronConductance.self, ExplainLayerDeepLift.self,
            ExplainLayerFeatureAblation.self, ExplainLayerGradientSHAP.self,
            ExplainLRP.self,
        ] + camSubcommands)
}

/// What every `explain` method shares: the model, the input, the target, the output and
/// an optional noise tunnel.
struct ExplainOptions: ParsableArguments {
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions

    @Option(name: .long, help: "Class to explain: an index, a label, or 'predicted' (default).")
    var target: String = "predicted"

    @Option(name: .long, help: "Write the attributions, float32 with the input tensor's shape (N,3,H,W), to this .npy file.")
    var attributions: String?

    @Flag(name: .long, help: "Print one JSON document describing the run.")
    var json = false

    @Option(name: .customLong("noise-tunnel"), help: "Wrap the method in a noise tunnel: smoothgrad, smoothgrad-sq or vargrad.")
    var noiseTunnel: NoiseTunnelKind?

    @Option(name: .customLong("nt-samples"), help: "Noisy samples per input for the noise tunnel.")
    var ntSamples: Int = 5

    @Option(name: .customLong("nt-stdev"), help: "Standard deviation of the noise tunnel's Gaussian noise, in input units.")
    var ntStdev: Float = 1.0

    @Option(name: .customLong("nt-batch-size"), help: "Noisy samples processed together (default: all).")
    var ntBatchSize: Int?

    @Option(name: .long, help: "Seed for every random draw, for bit-for-bit reproducible runs.")
    var seed: UInt64?

    @Flag(name: .long, help: "No progress bar on stderr.")
    var quiet = false

    @Option(name: .customLong("visualize"), help: "Also draw the first input's attributions to this PNG.")
    var visualize: String?

    @OptionGroup(title: "Picture options (with --visualize)") var visualization: VisualizationOptions

    func validate() throws {
        if attributions == nil && visualize == nil {
            throw ValidationError("give --attributions FILE.npy, --visualize FILE.png, or both")
        }
        // The shared settings' own checks, with the library's messages.
        try check(.saliency, Options())
    }

    /// The settings every method shares, as library options.
    var sharedOptions: Options {
        var options = Options(["target": .string(target), "nt-samples": .number(Double(ntSamples)),
                               "nt-stdev": .number(Double(ntStdev))])
        if let noiseTunnel { options["noise-tunnel"] = .string(noiseTunnel.rawValue) }
        if let ntBatchSize { options["nt-batch-size"] = .number(Double(ntBatchSize)) }
        if let seed { options["seed"] = .string(String(seed)) }
        return options
    }

    /// Checks `method`'s options (and the shared ones) as `validate()` does: a bad value is a
    /// usage error, before any file is read. Every method draws with `--visualize`: a layer's
    /// map (N,C,h,w) is summed over channels and upsampled to the photo (PictureSettings.figure).
    func check(_ method: ExplainMethod, _ options: Options) throws {
        do { _ = try ExplanationPlan(method: method.rawValue, options: sharedOptions.merging(options)) } catch {
            throw ValidationError(error.message)
        }
    }

    /// Runs `method` with `options` (the method's own; the shared ones come from here) on every
    /// input batch through the library's `Explainer`, with one progress bar over all of them
    /// on a terminal, writes the attributions and the picture, and prints the report.
    ///
    /// Nothing is written unless everything can be: the output files are checked first (never
    /// over an input, the method's baselines and mask included), the images must share one
    /// size (the attributions are one array), and the picture is drawn before the attributions
    /// are written.
    func run(_ method: ExplainMethod, _ options: Options) throws {
        let started = Date()
        let plan = try ExplanationPlan(method: method.rawValue, options: sharedOptions.merging(options))
        let protectedInputs = model.inputURLs + input.inputURLs + plan.inputFiles.map { URL(fileURLWithPath: $0) }
        try OutputFiles.check([("--attributions", attributions)] + visualization.outputs(picture: visualize),
                              inputs: protectedInputs, sameFileMessage: VisualizationOptions.sameFileMessage)
        let classifier = try model.loadClassifier()
        let batches = try input.loadBatches(for: classifier)
        let preset = input.preset ?? classifier.preset ?? .torchvision
        try input.requireOneSize(batches, preset: preset)
        if !json { input.noteIgnoredOrientations(batches) }
        let prepared = try plan.prepared()
        let name = method.rawValue
        let progress = ProgressBar(label: plan.settings.noiseTunnel.map { "\(name) (\($0.rawValue))" } ?? name,
                                   unit: method.progressUnit, enabled: !quiet)
        defer { progress.finish() }
        var explanation = try Explainer(classifier: classifier, modelName: model.model).run(
            prepared,
            batches: batches.map {
                ExplanationBatch(names: $0.names, inputs: $0.tensor, exifOrientation: input.ignoredOrientation($0),
                                 source: input.inputTensor ?? $0.names[0])
            },
            preset: preset, progress: progress.callback)
        progress.finish()  // before anything is printed on the same terminal
        let all = explanation.attributions
        let outputs = [attributions, visualize].compactMap { $0 }.map { URL(fileURLWithPath: $0) }
        var figure: AttributionFigure?
        if visualize != nil, let first = batches.first {
            // The photo is the model input with the preset's normalisation undone: exactly
            // the pixels the preset made from the image file.
            let photo = try VisualizationPhoto.denormalized(first.tensor, preset: preset)
            figure = try visualization.figure(all, index: 0, photo: photo)
        }
        if let attributions {
            try NPY.write(all, to: URL(fileURLWithPath: attributions), protectedInputs: protectedInputs)
        }
        if let visualize, let figure {
            try visualization.write(figure, to: visualize, protectedInputs: protectedInputs + outputs.dropLast())
        }
        explanation.report.attributions = attributions
        explanation.report.exif = input.exifRule?.rawValue
        explanation.report.elapsedSeconds = Date().timeIntervalSince(started)
        if json {
            try StandardOutput.write(try explanation.reportJSON() + "\n")
        } else {
            // File names and labels come from outside: escaped for the terminal.
            var text = ""
            for report in explanation.report.inputs {
                let label = report.targetLabel.map { " (\(TerminalText.escaped($0)))" } ?? ""
                text += "\(TerminalText.escaped(report.input)): \(name) for class \(report.target)\(label)"
                if let delta = report.convergenceDelta { text += String(format: ", convergence delta %.3g", delta) }
                text += "\n"
            }
            let written = outputs.map { TerminalText.escaped($0.path) }.joined(separator: " and ")
            text += String(format: "wrote %@ (%@) in %.2f s\n", written, all.shape.map(String.init).joined(separator: "×"),
                           explanation.report.elapsedSeconds)
            try StandardOutput.write(text)
        }
    }
}

extension NoiseTunnelKind: ExpressibleByArgument {}
