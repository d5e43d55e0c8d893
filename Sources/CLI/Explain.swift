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

    @Option(name: .long, help: "Write the attributions to this .npy file (float32): the input's shape (N,3,H,W), or a layer method's layer shape (grad-cam (N,1,h,w)).")
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

    @OptionGroup(title: "Data sets (--out-dir)") var batch: BatchOptions

    @Flag(name: .long, help: "With --out-dir: also draw each input's attributions to OUT/<name>.png (the picture options apply).")
    var pictures = false

    func validate() throws {
        if batch.outDir != nil {
            try validateBatch()
        } else if input.manifest != nil || pictures {
            throw ValidationError("\(pictures ? "--pictures" : "--manifest") applies only with --out-dir")
        } else if attributions == nil && visualize == nil {
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

    /// Refuses the single-run outputs with `--out-dir`, which names every output itself.
    private func validateBatch() throws {
        let refused: [(given: Bool, message: String)] = [
            (attributions != nil, "--attributions does not apply with --out-dir: each input's attributions go to OUT/<name>.npy"),
            (visualize != nil, "--visualize FILE does not apply with --out-dir: --pictures draws one picture per input"),
            (input.inputTensor != nil, "--input-tensor does not apply with --out-dir: give images, folders or --manifest"),
            (json, "--json does not apply with --out-dir: the index (OUT/index.jsonl) is the report"),
            (visualization.normalizedMap != nil, "--normalized-map does not apply with --out-dir"),
        ]
        if let first = refused.first(where: \.given) { throw ValidationError(first.message) }
    }

    /// The progress bar's label: the method, and its noise tunnel.
    private func progressLabel(_ plan: ExplanationPlan) -> String {
        plan.settings.noiseTunnel.map { "\(plan.method.rawValue) (\($0.rawValue))" } ?? plan.method.rawValue
    }

    /// `run` with `--out-dir`: every input into the folder, through the library's `BatchRunner`.
    private func runBatch(_ method: ExplainMethod, _ options: Options) throws -> Never {
        let all = sharedOptions.merging(options)
        let plan = try ExplanationPlan(method: method.rawValue, options: all)
        var settings: PictureSettings?
        if pictures {
            if method.isLayerMethod && method != .gradCAM && !method.isCAM {
                throw ElucidateError(.invalidArgument, "--pictures does not draw layer attributions yet")
            }
            settings = try visualization.settings()
        }
        try BatchRun(model: model, input: input, batch: batch, quiet: quiet).run(
            .explain(method: method.rawValue, options: all), label: progressLabel(plan), pictures: settings,
            protectedFiles: plan.inputFiles.map { URL(fileURLWithPath: $0) })
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
    ///
    /// With `--out-dir`, every input (files, folders, `--manifest`) is explained into the folder
    /// instead, and the process ends with the batch run's exit status.
    func run(_ method: ExplainMethod, _ options: Options) throws {
        if batch.outDir != nil { try runBatch(method, options) }
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
        let progress = ProgressBar(label: progressLabel(plan), unit: method.progressUnit, enabled: !quiet)
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
