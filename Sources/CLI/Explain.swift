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
        ])
}

/// What every `explain` method shares: the model, the input, the target, the output and
/// an optional noise tunnel.
struct ExplainOptions: ParsableArguments {
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions

    @Option(name: .long, help: "Class to explain: an index, or 'predicted' (default).")
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
        if target != "predicted", Int(target).map({ $0 < 0 }) ?? true {
            throw ValidationError("--target must be a class index ≥ 0 or 'predicted'")
        }
        if ntSamples < 1 { throw ValidationError("--nt-samples must be at least 1") }
        if !(ntStdev >= 0) || !ntStdev.isFinite { throw ValidationError("--nt-stdev must be a number ≥ 0") }
        if let ntBatchSize, ntBatchSize < 1 { throw ValidationError("--nt-batch-size must be at least 1") }
    }

    /// Runs `method` (inside a noise tunnel if asked) on every input batch, with one progress bar
    /// over all of them on a terminal, writes the attributions and prints the report. `inputs`
    /// are the method's own input files (baselines, a feature mask), which no output may overwrite.
    func run(_ method: some AttributionMethod, name: String, options: [String: String], inputs: [String] = []) throws {
        try run(name: name, options: options, inputs: inputs) { _, _ in method }
    }

    /// `run(_:name:options:inputs:)` with the method made for each input batch from the batch
    /// `[N, C, H, W]` and the preset that normalised it (to build a feature mask that fits the
    /// inputs without loading them twice). Every method is made, and so every mask and
    /// geometry checked, before any model work.
    ///
    /// Nothing is written unless everything can be: the output files are checked first, the
    /// images must share one size (the attributions are one array), and the picture is drawn
    /// before the attributions are written.
    func run<Method: AttributionMethod>(
        name: String, options: [String: String], inputs methodInputs: [String] = [],
        method makeMethod: (_ inputs: Tensor, _ preset: PreprocessingPreset) throws -> Method
    ) throws {
        let started = Date()
        let protectedInputs = model.inputURLs + input.inputURLs + methodInputs.map { URL(fileURLWithPath: $0) }
        try OutputFiles.check([("--attributions", attributions)] + visualization.outputs(picture: visualize),
                              inputs: protectedInputs, sameFileMessage: VisualizationOptions.sameFileMessage)
        let classifier = try model.loadClassifier()
        let batches = try input.loadBatches(for: classifier)
        let preset = input.preset ?? classifier.preset ?? .torchvision
        try input.requireOneSize(batches, preset: preset)
        if !json { input.noteIgnoredOrientations(batches) }
        let methods = try batches.map { try makeMethod($0.tensor, preset) }
        let seed = self.seed ?? SeededRandom.randomSeed()
        let tunnelled: [any AttributionMethod] = methods.map { method in
            guard let noiseTunnel else { return method }
            return NoiseTunnel(method, kind: noiseTunnel, samples: ntSamples, stdev: ntStdev, sampleBatchSize: ntBatchSize, seed: seed)
        }
        let (progress, runs) = try ProgressBar.over(
            tunnelled, inputs: batches.map(\.tensor), label: noiseTunnel.map { "\(name) (\($0.rawValue))" } ?? name,
            unit: methods.first?.progressUnit ?? "passes", enabled: !quiet)
        progress.start()
        defer { progress.finish() }
        var isStochastic = false
        var names: [String] = []
        var values: [Tensor] = []
        var reports: [ExplanationReport.Input] = []
        var details: [String: String] = [:]
        for (index, (batch, method)) in zip(batches, methods).enumerated() {
            let source = input.inputTensor ?? batch.names[0]
            let logits = try classifier.logits(batch.tensor)
            do { try logits.requireFinite("the model's output", advice: "its arithmetic overflows float32 on this input") } catch {
                throw error.at(source)
            }
            let best = classifier.topClasses(logits: logits, k: 1).map { $0[0] }
            let targets = try best.map { score throws(ElucidateError) -> Int in
                guard let fixed = Int(target) else { return score.index }
                guard fixed < classifier.classes else {
                    throw ElucidateError(.invalidArgument, "--target \(fixed) is out of range: the model has \(classifier.classes) classes")
                }
                return fixed
            }
            isStochastic = isStochastic || method.isStochastic
            let attribution = try runs[index].attribute(classifier, inputs: batch.tensor, targets: targets)
            do { try attribution.requireFinite(method: name) } catch { throw error.at(source) }  // never written as numbers
            details.merge(attribution.details) { $1 }
            let probabilities = logits.softmax()
            for (row, name) in batch.names.enumerated() {
                reports.append(ExplanationReport.Input(
                    input: name, target: targets[row], targetLabel: classifier.labels?[targets[row]],
                    predicted: best[row].index, predictedLabel: best[row].label, probability: best[row].probability,
                    targetProbability: probabilities[row, targets[row]],
                    convergenceDelta: attribution.convergenceDelta?[row], exifOrientation: input.ignoredOrientation(batch)))
            }
            names += batch.names
            values.append(attribution.values)
        }
        progress.finish()  // before anything is printed on the same terminal
        // One size: requireOneSize refused batches whose rows differ.
        let all = Tensor.concatenatingRows(values)
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
        var used = options
        if let noiseTunnel {
            used["noise-tunnel"] = noiseTunnel.rawValue
            used["nt-samples"] = String(ntSamples)
            used["nt-stdev"] = String(ntStdev)
        }
        if self.seed != nil || isStochastic || noiseTunnel != nil { used["seed"] = String(seed) }
        let elapsed = Date().timeIntervalSince(started)
        if json {
            try StandardOutput.write(try JSONOutput.string(ExplanationReport(
                method: name, model: model.model, architecture: classifier.architecture.description, attributions: attributions,
                shape: all.shape, options: used, details: details, elapsedSeconds: elapsed, exif: input.exifRule?.rawValue,
                inputs: reports)) + "\n")
        } else {
            // File names and labels come from outside: escaped for the terminal.
            var text = ""
            for report in reports {
                let label = report.targetLabel.map { " (\(TerminalText.escaped($0)))" } ?? ""
                text += "\(TerminalText.escaped(report.input)): \(name) for class \(report.target)\(label)"
                if let delta = report.convergenceDelta { text += String(format: ", convergence delta %.3g", delta) }
                text += "\n"
            }
            let written = outputs.map { TerminalText.escaped($0.path) }.joined(separator: " and ")
            text += String(format: "wrote %@ (%@) in %.2f s\n", written, all.shape.map(String.init).joined(separator: "×"), elapsed)
            try StandardOutput.write(text)
        }
    }
}

extension NoiseTunnelKind: ExpressibleByArgument {}

extension AttributionMethod {
    /// Whether the method draws random numbers by itself (so the seed is worth reporting).
    var isStochastic: Bool { self is GradientSHAP }

    /// What its progress counts (see `AttributionProgress`): perturbed copies scored, or
    /// forward/backward passes.
    var progressUnit: String { self is any FeatureMaskAttributionMethod || self is Occlusion ? "evals" : "passes" }

    /// The method reporting to `progress`.
    func reporting(to progress: @escaping AttributionProgress) -> Self {
        var copy = self
        copy.progress = progress
        return copy
    }
}

extension ProgressBar {
    /// A bar over a whole explain run, `runs[i]` on the input batch `inputs[i]` in turn, and
    /// the runs reporting into it; the runs as they are when no bar is drawn (`enabled` false,
    /// or stderr not a terminal), whose totals are then not even counted.
    static func over(_ runs: [any AttributionMethod], inputs: [Tensor], label: String, unit: String,
                     enabled: Bool) throws -> (ProgressBar, [any AttributionMethod]) {
        guard enabled, stderrIsTerminal else { return (ProgressBar(label: label, total: 0, unit: unit, enabled: false), runs) }
        var offsets: [Int] = []
        var total = 0
        for (run, input) in zip(runs, inputs) {
            offsets.append(total)
            total += try run.progressTotal(inputShape: input.shape)
        }
        let bar = ProgressBar(label: label, total: total, unit: unit, enabled: true)
        return (bar, zip(runs, offsets).map { run, offset in run.reporting { done, _ in bar.update(offset + done) } })
    }
}

struct ExplanationReport: Encodable {
    struct Input: Encodable {
        let input: String
        let target: Int
        let targetLabel: String?
        let predicted: Int
        let predictedLabel: String?
        /// Probability of the predicted class.
        let probability: Float
        let targetProbability: Float
        let convergenceDelta: Float?
        /// The EXIF orientation the image records, when it would turn it and was ignored.
        let exifOrientation: Int?
    }
    let method: String
    let model: String
    let architecture: String
    let attributions: String?
    let shape: [Int]
    let options: [String: String]
    let details: [String: String]
    let elapsedSeconds: Double
    /// The EXIF rule images were decoded with ("ignore" or "apply"; none for an input tensor).
    let exif: String?
    let inputs: [Input]
}
