import ArgumentParser
import Elucidate
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score explanations: how faithful (deletion, insertion, infidelity) and how stable (sensitivity-max).",
        subcommands: [EvaluateDeletion.self, EvaluateInsertion.self, EvaluateInfidelity.self, EvaluateSensitivityMax.self,
                      EvaluateSanity.self, EvaluateCompare.self])
}

/// What every `evaluate` metric shares: the model, the inputs, the target, where the maps
/// come from, and how the result is printed.
struct EvaluateOptions: ParsableArguments {
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions

    @Option(name: .long, help: "Class to evaluate: an index, a label, or 'predicted' (default).")
    var target: String = "predicted"

    @Option(name: .long, help: "The maps to evaluate: a float32 .npy with one row per input, (N,C,H,W), in the order the inputs are given (a folder's images in name order).")
    var attributions: String?

    @Option(name: .long, help: "Compute the maps with this explain method instead (e.g. saliency, integrated-gradients; see 'elucidate explain --help').")
    var method: String?

    @Option(name: .customLong("method-options"),
            help: ArgumentHelp("The method's options as JSON, by explain's long names: '{\"steps\": 32}'.", valueName: "json"))
    var methodOptions: String?

    @Option(name: .customLong("batch-size"), help: "Model inputs per call (default: 16; 10 for sensitivity-max).")
    var batchSize: Int?

    @OptionGroup var data: EvaluationDataOptions

    @Flag(name: .long, help: "Print one JSON document describing the run.")
    var json = false

    /// The library's request for subcommand `name` with its own `options`: a bad value is a
    /// usage error, before any file is read (`check`), with the library's message.
    func request(_ name: String, _ options: Options) throws(ElucidateError) -> EvaluationRequest {
        var all = metricOptions(options)
        if let method { all["method"] = .string(method) }
        if let methodOptions { all["method-options"] = .string(methodOptions) }
        return try EvaluationRequest(name, options: all, attributionsGiven: attributions != nil)
    }

    /// Checks the options shared by every subcommand and `name`'s own (`options`).
    func check(_ name: String, _ options: Options) throws {
        do { _ = try request(name, options) } catch { throw ValidationError(error.message) }
    }

    /// `options` with the shared `target` and `batch-size`.
    func metricOptions(_ options: Options) -> Options {
        var all = options
        all["target"] = .string(target)
        if let batchSize { all["batch-size"] = .number(Double(batchSize)) }
        return all
    }

    /// The classifier and the inputs, to be read a chunk at a time (`EvaluationInputs`).
    func loadInputs() throws -> (Classifier, EvaluationInputs) {
        try input.loadForEvaluation(model, imagesPerBatch: data.imagesPerBatch, json: json)
    }

    /// Evaluates every input with `metric` through the library's `Evaluator` and prints the
    /// report: a table, or JSON with `--json`.
    func run(_ metric: EvaluationMetric, _ options: Options, plot: String? = nil) throws {
        let request = try request(metric.rawValue, options)
        let inputFiles = model.inputURLs + input.inputURLs + (request.inputFiles + [attributions].compactMap { $0 })
            .map { URL(fileURLWithPath: $0) }
        try OutputFiles.check([("--plot", plot)], inputs: inputFiles)
        let (classifier, inputs) = try loadInputs()
        let given = try attributions.map { file throws(ElucidateError) in
            try NPY.readFiniteFloat32(URL(fileURLWithPath: file), what: "the attributions")
        }
        guard case .metric(var evaluation) = try request.run(Evaluator(classifier: classifier, modelName: model.model),
                                                             inputs: inputs, attributions: given) else {
            preconditionFailure("a metric's request gave another result")
        }
        evaluation.report.attributions = attributions
        if let plot, let canvas = evaluation.curvePlot() {
            try PNGWriter.write(canvas, to: URL(fileURLWithPath: plot), protectedInputs: inputFiles)
        }
        if json {
            try StandardOutput.write(try evaluation.reportJSON() + "\n")
            return
        }
        let report = evaluation.report
        var text = ""
        for row in report.inputs {
            let label = row.targetLabel.map { " (\(TerminalText.escaped($0)))" } ?? ""
            text += String(format: "%@: class %d%@, %@ %.6g\n", TerminalText.escaped(row.input), row.target, label,
                           report.scoreKey, row.score)
        }
        let what = report.method ?? "the attributions"
        text += String(format: "%@ of %@: mean %@ %.6g (standard deviation %.3g) over %d input(s) in %.2f s\n",
                       metric.rawValue, what, report.scoreKey, report.mean, report.standardDeviation,
                       report.inputs.count, report.elapsedSeconds)
        if let rate = report.imagesPerSecond { text += String(format: "%.1f masked images per second\n", rate) }
        try StandardOutput.write(text)
    }
}

/// `evaluate deletion` and `evaluate insertion`: RISE's curves (`PixelRemoval`).
struct RemovalOptions: ParsableArguments {
    @Option(name: .long, help: "Steps S: the curve has S+1 points (default 50).")
    var steps: Int = 50

    @Option(name: .long, help: ArgumentHelp(
        "What removed pixels become, in model input units: 0, a number, blur (RISE's 11x11 Gaussian, sigma 5) or an image .npy (C,H,W). Default: 0 for deletion, blur for insertion.",
        valueName: "baseline"))
    var baseline: String?

    @Option(name: .long, help: "Also draw the curves (one per input) to this PNG.")
    var plot: String?

    var options: Options {
        var options = Options(["steps": .number(Double(steps))])
        if let baseline { options["baseline"] = .string(baseline) }
        return options
    }
}

/// `evaluate deletion` or `evaluate insertion`: the two differ only in their metric.
protocol RemovalSubcommand: ParsableCommand {
    /// `.deletion` or `.insertion`.
    static var metric: EvaluationMetric { get }
    /// Model, inputs, target, maps, output.
    var common: EvaluateOptions { get }
    /// Steps and baseline.
    var removal: RemovalOptions { get }
}

extension RemovalSubcommand {
    func validate() throws { try common.check(Self.metric.rawValue, removal.options) }
    func run() throws { try common.run(Self.metric, removal.options, plot: removal.plot) }
}

struct EvaluateDeletion: RemovalSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "deletion", abstract: "RISE's deletion curve: remove the most important pixels first (lower AUC is better).")
    static let metric = EvaluationMetric.deletion
    @OptionGroup var common: EvaluateOptions
    @OptionGroup var removal: RemovalOptions
}

struct EvaluateInsertion: RemovalSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "insertion", abstract: "RISE's insertion curve: reveal the most important pixels first (higher AUC is better).")
    static let metric = EvaluationMetric.insertion
    @OptionGroup var common: EvaluateOptions
    @OptionGroup var removal: RemovalOptions
}

struct EvaluateInfidelity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infidelity", abstract: "Captum's infidelity: how well the map predicts the logit's change under perturbations.")
    @OptionGroup var common: EvaluateOptions

    @Option(name: .long, help: "Perturbations I, a float32 .npy (S,C,H,W): the perturbed inputs are x - I[s].")
    var perturbations: String?

    @Option(name: .customLong("noise-stdev"), help: "Gaussian perturbations of this standard deviation (default 0.1).")
    var noiseStdev: Float?

    @Option(name: .long, help: "Gaussian perturbations drawn (default 10).")
    var samples: Int?

    @Option(name: .long, help: "Seed of the Gaussian draws.")
    var seed: UInt64?

    @Flag(name: .long, help: "Rescale the map by the best factor first, as Captum's normalize.")
    var normalize = false

    var options: Options {
        var options = Options(["normalize": .bool(normalize)])
        if let perturbations { options["perturbations"] = .string(perturbations) }
        if let noiseStdev { options["noise-stdev"] = .number(Double(noiseStdev)) }
        if let samples { options["samples"] = .number(Double(samples)) }
        if let seed { options["seed"] = .string(String(seed)) }
        return options
    }

    func validate() throws { try common.check(EvaluationMetric.infidelity.rawValue, options) }
    func run() throws { try common.run(.infidelity, options) }
}

struct EvaluateSensitivityMax: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensitivity-max", abstract: "Captum's sensitivity-max: the largest relative change of the map under small noise.")
    @OptionGroup var common: EvaluateOptions

    @Option(name: .long, help: "Noise uniform in [-radius, radius] per element (default 0.02).")
    var radius: Float?

    @Option(name: .long, help: "Noisy inputs (default 10).")
    var samples: Int?

    @Option(name: .long, help: "Seed of the noise.")
    var seed: UInt64?

    @Option(name: .long, help: "Given noise instead, a float32 .npy (S,C,H,W): the noisy inputs are x + D[s].")
    var perturbations: String?

    var options: Options {
        var options = Options()
        if let radius { options["radius"] = .number(Double(radius)) }
        if let samples { options["samples"] = .number(Double(samples)) }
        if let seed { options["seed"] = .string(String(seed)) }
        if let perturbations { options["perturbations"] = .string(perturbations) }
        return options
    }

    func validate() throws { try common.check(EvaluationMetric.sensitivityMax.rawValue, options) }
    func run() throws { try common.run(.sensitivityMax, options) }
}

struct EvaluateSanity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sanity",
        abstract: "Adebayo et al.'s sanity check: re-initialise the model from the top (fc, layer4 … conv1) and compare each stage's map with the original.")
    @OptionGroup var common: EvaluateOptions

    @Option(name: .long, help: "Seed of the re-initialisation (default: a random one, reported).")
    var seed: UInt64?

    @Option(name: .long, help: "Also draw the first input's maps, original then one per stage, to this PNG.")
    var plot: String?

    var options: Options { seed.map { Options(["seed": .string(String($0))]) } ?? Options() }

    func validate() throws { try common.check("sanity", options) }

    func run() throws {
        let inputFiles = common.model.inputURLs + common.input.inputURLs
        try OutputFiles.check([("--plot", plot)], inputs: inputFiles)
        let request = try common.request("sanity", options)
        let (classifier, inputs) = try common.loadInputs()
        guard case .sanity(let check) = try request.run(Evaluator(classifier: classifier, modelName: common.model.model),
                                                         inputs: inputs, attributions: nil) else {
            preconditionFailure("a sanity request gave another result")
        }
        if let plot { try PNGWriter.write(check.figure(), to: URL(fileURLWithPath: plot), protectedInputs: inputFiles) }
        let report = check.report
        if common.json {
            try StandardOutput.write(try JSONOutput.string(report) + "\n")
            return
        }
        var text = ""
        for row in report.inputs {
            guard let last = row.layers.last else { continue }
            text += String(format: "%@: class %d, up to %@: Spearman %.4f, Spearman of |map| %.4f, SSIM %.4f\n",
                           TerminalText.escaped(row.input), row.target, last.layer, last.spearman, last.spearmanAbs, last.ssim)
        }
        text += "sanity check of \(report.method) (seed \(report.seed)), mean (standard deviation) over \(report.count) input(s):\n"
        for stage in report.layers {
            text += String(format: "  up to %@: Spearman %.4f (%.3g), Spearman of |map| %.4f (%.3g), SSIM %.4f (%.3g)\n",
                           stage.layer, stage.spearman, stage.spearmanStandardDeviation ?? 0, stage.spearmanAbs,
                           stage.spearmanAbsStandardDeviation ?? 0, stage.ssim, stage.ssimStandardDeviation ?? 0)
        }
        try StandardOutput.write(text)
    }
}

struct EvaluateCompare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Rank input-attribution methods on one model and inputs by every metric, in one table.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions

    @Option(name: .long, help: "Comma-separated explain methods, e.g. saliency,integrated-gradients (each with its defaults).")
    var methods: String

    @Option(name: .long, help: "Seed of every draw (default: a random one, reported).")
    var seed: UInt64?

    @OptionGroup var data: EvaluationDataOptions

    @Flag(name: .long, help: "Print one JSON document describing the run.")
    var json = false

    /// The library's request: the methods and the seed.
    func request() throws(ElucidateError) -> EvaluationRequest {
        var options = Options(["methods": .string(methods)])
        if let seed { options["seed"] = .string(String(seed)) }
        return try EvaluationRequest("compare", options: options, attributionsGiven: false)
    }

    func validate() throws {
        do { _ = try request() } catch { throw ValidationError(error.message) }
    }

    func run() throws {
        let request = try request()
        let (classifier, inputs) = try input.loadForEvaluation(model, imagesPerBatch: data.imagesPerBatch, json: json)
        guard case .compare(let report) = try request.run(Evaluator(classifier: classifier, modelName: model.model),
                                                          inputs: inputs, attributions: nil) else {
            preconditionFailure("a compare request gave another result")
        }
        if json {
            try StandardOutput.write(try JSONOutput.string(report) + "\n")
            return
        }
        func cell(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
        let nameWidth = max(6, report.methods.map(\.method.count).max() ?? 0)
        func line(_ name: String, _ values: [Double]) -> String {
            name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                + cell(String(format: "%.4f", values[0]), 11) + cell(String(format: "%.4f", values[1]), 11)
                + cell(String(format: "%.4g", values[2]), 12) + cell(String(format: "%.4f", values[3]), 13)
                + cell(String(format: "%.4f", values[4]), 12) + "\n"
        }
        let keys = ["deletion", "insertion", "infidelity", "sensitivityMax", "sanitySpearmanAbs"]
        let header = cell("deletion", 11) + cell("insertion", 11) + cell("infidelity", 12) + cell("sensitivity", 13)
            + cell("sanity |ρ|", 12) + "\n"
        // The means and their spread, then every input's values (a data set's rows).
        var text = "method".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + header
        for row in report.methods {
            text += line(row.method, keys.map { row.spread[$0]?.mean ?? .nan })
            text += line("  ± sd", keys.map { row.spread[$0]?.standardDeviation ?? .nan })
        }
        text += "mean and standard deviation over \(report.count) input(s), seed \(report.seed); deletion, infidelity, sensitivity and sanity: lower is better\n\n"
        for row in report.methods {
            for input in row.inputs {
                text += "\(TerminalText.escaped(input.input)): \(row.method): class \(input.target), "
                    + zip(keys, [input.deletion, input.insertion, input.infidelity, input.sensitivityMax,
                                 input.sanitySpearmanAbs]).map { String(format: "%@ %.4g", $0, $1) }.joined(separator: ", ") + "\n"
            }
        }
        try StandardOutput.write(text)
    }
}

/// How `evaluate` reads a data set: a chunk of images at a time.
struct EvaluationDataOptions: ParsableArguments {
    @Option(name: .customLong("images-per-batch"), help: ArgumentHelp(
        "Inputs decoded and evaluated together (default 16): a folder or manifest is never read whole. Scores do not depend on it.",
        valueName: "n"))
    var imagesPerBatch: Int = EvaluationInputs.defaultImagesPerBatch

    func validate() throws {
        if imagesPerBatch < 1 { throw ValidationError("--images-per-batch must be at least 1") }
    }
}

extension InputOptions {
    /// The classifier of `model` and the inputs to evaluate, `imagesPerBatch` at a time: the
    /// input tensor's rows, or the images, folders and manifest as `InputDiscovery.found` lists
    /// them in the order given (a manifest's targets kept); notes ignored EXIF orientations on
    /// stderr unless printing JSON.
    func loadForEvaluation(_ model: ModelOptions, imagesPerBatch: Int, json: Bool) throws -> (Classifier, EvaluationInputs) {
        let classifier = try model.loadClassifier()
        if inputTensor != nil {
            let batch = try loadBatches(for: classifier)[0]
            return (classifier, .tensor(batch.tensor, names: batch.names, imagesPerBatch: imagesPerBatch))
        }
        let found = try InputDiscovery.found(paths: images, manifest: manifest)
        if found.isEmpty { throw ElucidateError(.invalidArgument, "no PNG or JPEG images in the inputs given") }
        var inputs = EvaluationInputs.images(found, preset: preset, exif: exifRule ?? .ignore, imagesPerBatch: imagesPerBatch)
        if !json { inputs.ignoredOrientation = InputOptions.noteIgnoredOrientation }
        return (classifier, inputs)
    }
}
