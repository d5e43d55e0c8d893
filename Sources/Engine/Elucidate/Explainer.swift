import Foundation

/// The whole `elucidate explain` workflow as a library call: choose the target class, wrap
/// the method in a noise tunnel if asked, run it, check the result, and report.
///
/// ```swift
/// let classifier = try ModelLoader.load("fashion-mnist-resnet")
/// let input = try classifier.inputTensor(imageAt: "shirt.png")          // [1, 3, 28, 28]
/// let explainer = Explainer(classifier: classifier)
/// let explanation = try explainer.explain(
///     method: "integrated-gradients",
///     options: Options(["steps": .number(200), "noise-tunnel": .string("smoothgrad-sq")]),
///     inputs: input)
/// // explanation.attributions: [1, 3, 28, 28]; explanation.report: what `--json` prints
/// ```
///
/// Options are the command line's long names without dashes: the method's own (`steps`,
/// `window`, `grid`, …) and the ones every method shares — `target` (`predicted`, a class
/// index or a label), `noise-tunnel` (`smoothgrad`, `smoothgrad-sq`, `vargrad`),
/// `nt-samples`, `nt-stdev`, `nt-batch-size` and `seed`. An unknown name is an error.
///
/// Thread safety: an `Explainer` is an immutable value; any number of threads may call
/// `explain` on one (or on several sharing one `Classifier`) at once, and each call's result
/// is the same as when it runs alone.
public struct Explainer: Sendable {
    /// The model every explanation runs on.
    public let classifier: Classifier
    /// How the report names the model (`--model`'s text); the weights file's path by default.
    public var modelName: String

    /// An explainer for `classifier`; `modelName` is what reports call the model (default:
    /// the weights file's path).
    public init(classifier: Classifier, modelName: String? = nil) {
        self.classifier = classifier
        self.modelName = modelName ?? classifier.source.path
    }

    /// Explains `targets` (or the `target` option, or each row's predicted class) for every
    /// row of `inputs` `[N, C, H, W]`, preprocessed as the model expects.
    ///
    /// - Parameters:
    ///   - method: the method's command-line name (`ExplainMethod`), e.g. `integrated-gradients`.
    ///   - options: the method's and the shared options by their command-line names.
    ///   - inputs: the batch `[N, C, H, W]`, C the model's input channels.
    ///   - targets: one class index per row, overriding the `target` option.
    ///   - names: how the report names each row (default `input[i]`).
    ///   - preset: the normalisation `inputs` went through (for superpixels); default the
    ///     model's own, else torchvision.
    ///   - progress: hears (done, total) units of work as the method runs: first (0, total)
    ///     before any work, then after each unit batch (see `AttributionProgress`).
    public func explain(method: String, options: Options = Options(), inputs: Tensor, targets: [Int]? = nil,
                        names: [String]? = nil, preset: PreprocessingPreset? = nil,
                        progress: AttributionProgress? = nil) throws(ElucidateError) -> Explanation {
        try checkInput(inputs)
        let rowNames = names ?? (0..<inputs.shape[0]).map { "input[\($0)]" }
        guard rowNames.count == inputs.shape[0] else {
            throw ElucidateError(.invalidArgument, "\(rowNames.count) names for \(inputs.shape[0]) inputs")
        }
        let plan = try ExplanationPlan(method: method, options: options)
        let batch = ExplanationBatch(names: rowNames, inputs: inputs, targets: targets)
        return try run(plan.prepared(), batches: [batch], preset: preset, progress: progress)
    }

    /// Runs a prepared plan on each batch in turn — one report and one `[ΣN, C, H, W]` array
    /// over all of them, so every batch must have the same row shape — with `progress` hearing
    /// the work of all the batches as one total. Every method is made (every mask and
    /// geometry checked) before any model work.
    public func run(_ plan: PreparedExplanation, batches: [ExplanationBatch], preset: PreprocessingPreset? = nil,
                    progress: AttributionProgress? = nil) throws(ElucidateError) -> Explanation {
        let started = Date()
        guard let firstBatch = batches.first else {
            throw ElucidateError(.invalidArgument, "no inputs to explain")
        }
        let rowShape = Array(firstBatch.inputs.shape.dropFirst())
        for batch in batches {
            do { try checkInput(batch.inputs) } catch { throw error.at(batch.source) }
            guard Array(batch.inputs.shape.dropFirst()) == rowShape else {
                throw ElucidateError(.invalidArgument, "inputs differ in size (\(rowShape) and \(Array(batch.inputs.shape.dropFirst())))")
            }
        }
        let preset = preset ?? classifier.preset ?? .torchvision
        let settings = plan.settings
        let methods: [any AttributionMethod] = try batches.map { batch throws(ElucidateError) in
            let method = try plan.make(batch.inputs, preset)
            guard let tunnel = settings.noiseTunnel else { return method }
            return method.insideNoiseTunnel(kind: tunnel, samples: settings.ntSamples, stdev: settings.ntStdev,
                                            sampleBatchSize: settings.ntBatchSize, seed: settings.seed)
        }
        let runs = try Self.reporting(methods, inputs: batches.map(\.inputs), to: progress)

        var values: [Tensor] = []
        var inputsReport: [ExplanationReport.Input] = []
        var details: [String: String] = [:]
        var stochastic = false
        for (batch, method) in zip(batches, runs) {
            let logits: Tensor
            let targets: [Int]
            let best: [ClassScore]
            do throws(ElucidateError) {
                logits = try classifier.logits(batch.inputs)
                try logits.requireFinite("the model's output", advice: "its arithmetic overflows float32 on this input")
                best = classifier.topClasses(logits: logits, k: 1).map { $0[0] }
                targets = try self.targets(batch, best: best, requested: settings.target)
            } catch { throw error.at(batch.source) }
            stochastic = stochastic || method.isStochastic
            let attribution = try method.attribute(classifier, inputs: batch.inputs, targets: targets)
            do { try attribution.requireFinite(method: plan.method.rawValue) } catch { throw error.at(batch.source) }
            details.merge(attribution.details) { $1 }
            let probabilities = logits.softmax()
            for (row, name) in batch.names.enumerated() {
                inputsReport.append(ExplanationReport.Input(
                    input: name, target: targets[row], targetLabel: classifier.labels?[targets[row]],
                    predicted: best[row].index, predictedLabel: best[row].label, probability: best[row].probability,
                    targetProbability: probabilities[row, targets[row]],
                    convergenceDelta: attribution.convergenceDelta?[row],
                    exifOrientation: batch.exifOrientation))
            }
            values.append(attribution.values)
        }
        let attributions = values.count == 1 ? values[0] : Tensor.concatenatingRows(values)
        var recorded = plan.recorded
        if settings.seedGiven || stochastic { recorded["seed"] = String(settings.seed) }
        let report = ExplanationReport(
            method: plan.method.rawValue, model: modelName, architecture: classifier.architecture.description,
            attributions: nil, shape: attributions.shape, options: recorded, details: details,
            elapsedSeconds: Date().timeIntervalSince(started), exif: nil, inputs: inputsReport)
        return Explanation(attributions: attributions, report: report)
    }

    private func checkInput(_ inputs: Tensor) throws(ElucidateError) {
        guard inputs.rank == 4 else {
            throw ElucidateError(.invalidArgument, "the input must be a batch [N, C, H, W], got \(inputs.shape)")
        }
        guard inputs.shape.allSatisfy({ $0 > 0 }) else {
            throw ElucidateError(.inputTooSmall, "the input \(inputs.shape) is empty")
        }
        guard inputs.shape[1] == classifier.network.inputChannels else {
            throw ElucidateError(.invalidArgument,
                                 "the input has \(inputs.shape[1]) channels, the model takes \(classifier.network.inputChannels)")
        }
    }

    /// The class to explain for each row of `batch`.
    func targets(_ batch: ExplanationBatch, best: [ClassScore], requested: TargetChoice) throws(ElucidateError) -> [Int] {
        if let given = batch.targets {
            guard given.count == best.count else {
                throw ElucidateError(.invalidArgument, "\(given.count) targets for \(best.count) inputs")
            }
            if let bad = given.first(where: { $0 < 0 || $0 >= classifier.classes }) {
                throw ElucidateError(.invalidArgument, "target \(bad) is out of range: the model has \(classifier.classes) classes")
            }
            return given
        }
        switch requested {
        case .predicted:
            return best.map(\.index)
        case .index(let index):
            guard index < classifier.classes else {
                throw ElucidateError(.invalidArgument, "--target \(index) is out of range: the model has \(classifier.classes) classes")
            }
            return best.map { _ in index }
        case .label(let label):
            guard let labels = classifier.labels else {
                throw ElucidateError(.invalidArgument,
                                     "--target '\(label)' names a class, but the model has no labels (give --labels FILE or a class index)")
            }
            guard let index = labels.firstIndex(of: label) else {
                throw ElucidateError(.invalidArgument, "--target '\(label)' is not one of the model's \(labels.count) labels")
            }
            return best.map { _ in index }
        }
    }

    /// `methods` reporting into one `progress` over all of them, `methods[i]` on `inputs[i]`
    /// in turn; unchanged (totals not even counted) without a `progress`.
    private static func reporting(_ methods: [any AttributionMethod], inputs: [Tensor],
                                  to progress: AttributionProgress?) throws(ElucidateError) -> [any AttributionMethod] {
        guard let progress else { return methods }
        var offsets: [Int] = []
        var total = 0
        for (method, input) in zip(methods, inputs) {
            offsets.append(total)
            total += try method.progressTotal(inputShape: input.shape)
        }
        let grandTotal = total
        progress(0, grandTotal)  // before any work: a progress bar can show its total at once
        return zip(methods, offsets).map { method, offset in
            method.reporting { done, _ in progress(offset + done, grandTotal) }
        }
    }
}

/// Rows to explain together: their names, the tensor `[N, C, H, W]`, optionally a class per
/// row, and for an image the EXIF orientation it records but that was not applied (reported).
public struct ExplanationBatch: Sendable {
    /// How the report names each row (one name per row of `inputs`).
    public var names: [String]
    /// The rows, `[N, C, H, W]`, preprocessed as the model expects.
    public var inputs: Tensor
    /// The class to explain for each row (N indices), or nil for the plan's `target` option.
    public var targets: [Int]?
    /// The EXIF orientation (1…8) the image records but that was not applied, for the report.
    public var exifOrientation: Int?
    /// What errors about the batch name (default: its first input's name).
    public var source: String

    /// A batch of `inputs` `[N, C, H, W]` named `names` (N of them); errors about it name `source`,
    /// by default the first name.
    public init(names: [String], inputs: Tensor, targets: [Int]? = nil, exifOrientation: Int? = nil,
                source: String? = nil) {
        self.names = names
        self.inputs = inputs
        self.targets = targets
        self.exifOrientation = exifOrientation
        self.source = source ?? names.first ?? "input"
    }
}

/// The class an explanation is for.
public enum TargetChoice: Sendable, Equatable {
    /// Each row's predicted class.
    case predicted
    /// The class with this index (0-based; must be below the model's class count).
    case index(Int)
    /// The class whose label is this text.
    case label(String)

    /// `predicted`, a class index, or a label.
    public init(parsing text: String) throws(ElucidateError) {
        if text == "predicted" {
            self = .predicted
        } else if let index = Int(text) {
            guard index >= 0 else { throw ElucidateError(.invalidArgument, "--target must be a class index ≥ 0, a label or 'predicted'") }
            self = .index(index)
        } else if text.isEmpty {
            throw ElucidateError(.invalidArgument, "--target must be a class index ≥ 0, a label or 'predicted'")
        } else {
            self = .label(text)
        }
    }
}

/// The settings every method shares: the target, the noise tunnel, the seed.
public struct SharedExplainSettings: Sendable {
    /// Which class to explain (`target`): the prediction by default.
    public var target: TargetChoice = .predicted
    /// The noise tunnel around the method (`noise-tunnel`), or nil for none.
    public var noiseTunnel: NoiseTunnelKind?
    /// Noisy copies per input (`nt-samples`, default 5, at least 1).
    public var ntSamples = 5
    /// Standard deviation of the tunnel's noise in input units (`nt-stdev`, default 1).
    public var ntStdev: Float = 1
    /// Noisy copies per batch (`nt-batch-size`); nil lets the tunnel choose.
    public var ntBatchSize: Int?
    /// The seed of every random draw (a random one unless given).
    public var seed: UInt64
    /// Whether the seed was given (it is then always reported).
    public var seedGiven: Bool

    init(reading reader: inout OptionReader) throws(ElucidateError) {
        if let text = try reader.string("target") { target = try TargetChoice(parsing: text) }
        noiseTunnel = try reader.choice("noise-tunnel", NoiseTunnelKind.self)
        ntSamples = try reader.int("nt-samples", default: 5)
        if ntSamples < 1 { throw ElucidateError(.invalidArgument, "--nt-samples must be at least 1") }
        ntStdev = try reader.float("nt-stdev", default: 1)
        if !(ntStdev >= 0) || !ntStdev.isFinite { throw ElucidateError(.invalidArgument, "--nt-stdev must be a number ≥ 0") }
        ntBatchSize = try reader.int("nt-batch-size")
        if let ntBatchSize, ntBatchSize < 1 { throw ElucidateError(.invalidArgument, "--nt-batch-size must be at least 1") }
        let given = try reader.value(of: "seed", as: UInt64.self)
        seed = given ?? SeededRandom.randomSeed()
        seedGiven = given != nil
    }
}

/// A method and its options, read and checked without touching any file or model: what
/// `elucidate explain` checks before it starts.
public struct ExplanationPlan: Sendable {
    /// The method to run.
    public let method: ExplainMethod
    /// The target, noise tunnel and seed, read from the options.
    public let settings: SharedExplainSettings
    let recipe: MethodRecipe

    /// Reads `options` for `method` (a name such as `integrated-gradients`); refuses bad
    /// values and unknown options.
    public init(method name: String, options: Options) throws(ElucidateError) {
        method = try ExplainMethod.named(name)
        var reader = OptionReader(options)
        settings = try SharedExplainSettings(reading: &reader)
        recipe = try MethodRecipe(method, reading: &reader, seed: settings.seed)
        try reader.finish(context: name)
        if settings.noiseTunnel != nil, method.isCAM || method == .lrp {
            // Captum's NoiseTunnel wraps Captum's methods (the layer and neuron ones included);
            // pytorch-grad-cam's CAMs and Zennit's LRP have no such tunnel to follow.
            throw ElucidateError(.invalidArgument, "--noise-tunnel does not apply to \(name) (pytorch-grad-cam's and Zennit's methods have no noise tunnel)")
        }
    }

    /// The files the method will read (baselines, a feature mask): outputs must spare them.
    public var inputFiles: [String] { recipe.inputFiles }

    /// The options as the report records them.
    public var recorded: [String: String] {
        var recorded = recipe.recorded
        if let tunnel = settings.noiseTunnel {
            recorded["noise-tunnel"] = tunnel.rawValue
            recorded["nt-samples"] = String(settings.ntSamples)
            recorded["nt-stdev"] = String(settings.ntStdev)
            recorded["seed"] = String(settings.seed)
        }
        if settings.seedGiven { recorded["seed"] = String(settings.seed) }
        return recorded
    }

    /// The plan with its files read.
    public func prepared() throws(ElucidateError) -> PreparedExplanation {
        PreparedExplanation(plan: self, make: try recipe.prepare())
    }
}

/// A plan whose files have been read: ready to run on input batches.
public struct PreparedExplanation: Sendable {
    let plan: ExplanationPlan
    let make: MethodMaker

    /// The method to run.
    public var method: ExplainMethod { plan.method }
    /// The target, noise tunnel and seed.
    public var settings: SharedExplainSettings { plan.settings }
    /// The options as the report records them (name → command-line text).
    public var recorded: [String: String] { plan.recorded }
}

/// What `Explainer` returns: the attributions and the report.
public struct Explanation: Sendable {
    /// The attributions: one per input element, `[N, C, H, W]`, for the input methods; the
    /// layer's shape for a layer method (`[N, 1, h, w]` for Grad-CAM).
    public var attributions: Tensor
    /// What the run did: targets, predictions, convergence deltas, options, time.
    public var report: ExplanationReport

    /// The report as `elucidate explain --json` prints it.
    public func reportJSON() throws(ElucidateError) -> String {
        try JSONOutput.string(report)
    }
}

/// What an explanation run did, as `elucidate explain --json` prints it.
public struct ExplanationReport: Codable, Sendable {
    /// One explained row.
    public struct Input: Codable, Sendable {
        /// The row's name (an image path, or `input[i]`).
        public var input: String
        /// The class explained.
        public var target: Int
        /// The explained class's label, when the model has labels.
        public var targetLabel: String?
        /// The class the model predicts for the row.
        public var predicted: Int
        /// The predicted class's label, when the model has labels.
        public var predictedLabel: String?
        /// Probability of the predicted class.
        public var probability: Float
        /// Softmax probability of the explained class.
        public var targetProbability: Float
        /// Σ attributions − (F(input) − F(baseline)) for methods with completeness (Integrated
        /// Gradients, GradientSHAP, DeepLIFT); nil for the others.
        public var convergenceDelta: Float?
        /// The EXIF orientation the image records, when it would turn it and was ignored.
        public var exifOrientation: Int?
    }
    /// The method's command-line name, e.g. `integrated-gradients`.
    public var method: String
    /// The model as given (`--model`'s text or the weights file's path).
    public var model: String
    /// The architecture, e.g. `resnet34` (`resnet34 with fastai head` for a fastai model).
    public var architecture: String
    /// The file the attributions were written to, when they were.
    public var attributions: String?
    /// The attributions' shape: the input's `[N, C, H, W]`, or the layer's for a layer method.
    public var shape: [Int]
    /// The options in force, by name, as command-line text (defaults included).
    public var options: [String: String]
    /// Facts the method reports about the run (e.g. GradientSHAP's baselines).
    public var details: [String: String]
    /// Wall-clock time of the run, in seconds.
    public var elapsedSeconds: Double
    /// The EXIF rule images were decoded with ("ignore" or "apply"; none for a tensor).
    public var exif: String?
    /// One entry per explained row, in order.
    public var inputs: [Input]
}

extension OptionReader {
    /// An unsigned integer option such as `seed`.
    mutating func value(of name: String, as type: UInt64.Type) throws(ElucidateError) -> UInt64? {
        guard let text = try string(name) else { return nil }
        guard let value = UInt64(text) else {
            throw ElucidateError(.invalidArgument, "--\(name) must be an integer ≥ 0, got '\(text)'")
        }
        return value
    }
}

extension Occlusion.Evaluation {
    /// `incremental` or `full`.
    init?(name: String) {
        switch name {
        case "incremental": self = .incremental
        case "full": self = .full
        default: return nil
        }
    }
}

extension AttributionMethod {
    /// The method reporting to `progress`.
    func reporting(to progress: @escaping AttributionProgress) -> Self {
        var copy = self
        copy.progress = progress
        return copy
    }

    /// The method inside a noise tunnel (opened here so the existential's type is known).
    func insideNoiseTunnel(kind: NoiseTunnelKind, samples: Int, stdev: Float, sampleBatchSize: Int?,
                           seed: UInt64) -> any AttributionMethod {
        NoiseTunnel(self, kind: kind, samples: samples, stdev: stdev, sampleBatchSize: sampleBatchSize, seed: seed)
    }
}
