import Foundation

/// Where the maps an `Evaluator` judges come from.
public enum AttributionSource: Sendable {
    /// Given maps, one row per input row: `[N, C, H, W]` for infidelity; any channel count
    /// `[N, C', H, W]` for deletion and insertion (only the per-pixel sum counts).
    case given(Tensor)
    /// An `explain` method by its command-line name with its options (as `Explainer` takes
    /// them; the target is the evaluation's). Sensitivity-max needs this: it reruns the method.
    case method(String, Options)
}

/// The whole `elucidate evaluate` workflow as a library call: choose each row's target,
/// compute or take the maps, and score them with one metric.
///
/// ```swift
/// let classifier = try ModelLoader.load("fashion-mnist-resnet")
/// let input = try classifier.inputTensor(imageAt: "shirt.png")          // [1, 1, 28, 28]
/// let evaluation = try Evaluator(classifier: classifier).evaluate(
///     metric: "deletion", options: Options(["steps": .number(28)]),
///     inputs: input, attributions: .method("saliency", Options()))
/// // evaluation.report.inputs[0].curve: 29 probabilities; .score: the AUC
/// ```
///
/// Each row is evaluated on its own; the report gives every row's score and their mean and
/// spread. A data set (`EvaluationInputs`: a folder, a manifest, many images) is read and
/// evaluated `imagesPerBatch` inputs at a time, never whole.
public struct Evaluator: Sendable {
    /// The model the metrics run.
    public let classifier: Classifier
    /// How the report names the model (the weights file's path by default).
    public var modelName: String

    /// An evaluator for `classifier`; `modelName` is what reports call the model.
    public init(classifier: Classifier, modelName: String? = nil) {
        self.classifier = classifier
        self.modelName = modelName ?? classifier.source.path
    }

    /// Scores the maps of `attributions` for every row of `inputs` `[N, C, H, W]` with
    /// `metric` (an `EvaluationMetric` name) and its `options` (see `EvaluationPlan`).
    /// `targets` (one per row) overrides the `target` option; `names` name the rows.
    public func evaluate(metric: String, options: Options = Options(), inputs: Tensor, attributions: AttributionSource,
                         targets: [Int]? = nil, names: [String]? = nil) throws(ElucidateError) -> Evaluation {
        try evaluate(EvaluationPlan(metric: metric, options: options), inputs: inputs, attributions: attributions,
                     targets: targets, names: names)
    }

    /// Runs a checked plan (see `evaluate(metric:options:inputs:attributions:targets:names:)`)
    /// on the rows of `inputs` as one chunk.
    public func evaluate(_ plan: EvaluationPlan, inputs: Tensor, attributions source: AttributionSource,
                         targets: [Int]? = nil, names: [String]? = nil) throws(ElucidateError) -> Evaluation {
        try evaluate(plan, inputs: .tensor(inputs, names: names, targets: targets, imagesPerBatch: Self.oneChunk(inputs)),
                     attributions: source)
    }

    /// Scores every input of a data set with a checked plan, `inputs.imagesPerBatch` inputs at
    /// a time: each input's row (score, curve) and the scores' mean, standard deviation and count.
    /// Given maps (`AttributionSource.given`) have one row per input, in the inputs' order.
    public func evaluate(_ plan: EvaluationPlan, inputs: EvaluationInputs,
                         attributions source: AttributionSource) throws(ElucidateError) -> Evaluation {
        let started = Date()
        let metric = try plan.metricValue()
        let explainer = Explainer(classifier: classifier, modelName: modelName)
        var maker: MethodMaps?
        if case .method(let name, let options) = source { maker = try MethodMaps(name, options, preset: inputs.preset) }
        var reports: [EvaluationReport.Input] = []
        var masked = 0
        try inputs.forEachChunk(classifier) { chunk throws(ElucidateError) in
            // Given maps are checked once the inputs are known good (the first chunk read), before any model work.
            if chunk.offset == 0, case .given(let given) = source {
                guard given.rank == 4, given.shape[0] == inputs.count else {
                    throw ElucidateError(.invalidArgument, "the attributions \(given.shape) must be [N, C, H, W] with one row per input (\(inputs.count))")
                }
                try given.requireFinite("the attributions", advice: "give finite attributions")
            }
            let rowTargets = try targets(chunk, plan.target)
            var maps: Tensor?
            switch source {
            case .given(let given): maps = given.rows(chunk.offset..<(chunk.offset + chunk.count))
            case .method:
                // Sensitivity reruns the method on every noisy input; the others need one map.
                if case .sensitivity = metric {} else { maps = try maker!.maps(explainer, chunk, targets: rowTargets) }
            }
            for row in 0..<chunk.count {
                reports.append(try score(metric, chunk, row: row, target: rowTargets[row], maps: maps, maker: maker,
                                         explainer: explainer))
            }
            if case .removal(let removal) = metric { masked += chunk.count * (removal.steps + 1) }
        }
        let spread = Spread(reports.map(\.score))
        let elapsed = Date().timeIntervalSince(started)
        var report = EvaluationReport(
            metric: plan.metric, model: modelName, method: maker?.name, options: plan.recorded,
            mean: spread.mean, standardDeviation: spread.standardDeviation, elapsedSeconds: elapsed, inputs: reports)
        if masked > 0, elapsed > 0 { report.imagesPerSecond = Double(masked) / elapsed }
        return Evaluation(report: report)
    }

    /// `imagesPerBatch` that takes every row of `inputs` in one chunk (the tensor APIs' way).
    static func oneChunk(_ inputs: Tensor) -> Int { inputs.rank == 4 ? max(1, inputs.shape[0]) : 1 }

    /// Each row's class: its own (a manifest's, or given), else `requested` (`predicted`: the
    /// model's best class for the row).
    func targets(_ chunk: EvaluationChunk, _ requested: TargetChoice) throws(ElucidateError) -> [Int] {
        if chunk.targets.allSatisfy({ $0 != nil }) { return chunk.targets.map { $0! } }
        let best = classifier.topClasses(logits: try classifier.logits(chunk.inputs), k: 1).map { $0[0] }
        let planned = try Explainer(classifier: classifier, modelName: modelName)
            .targets(ExplanationBatch(names: chunk.names, inputs: chunk.inputs), best: best, requested: requested)
        return zip(chunk.targets, planned).map { $0 ?? $1 }
    }

    /// One row's score with a prepared metric: `maps` are the chunk's (nil for sensitivity,
    /// which reruns `maker`'s method on noisy copies of the row).
    func score(_ metric: PreparedMetric, _ chunk: EvaluationChunk, row: Int, target: Int, maps: Tensor?,
               maker: MethodMaps?, explainer: Explainer) throws(ElucidateError) -> EvaluationReport.Input {
        let input = chunk.inputs.rows(row..<(row + 1))
        var entry = EvaluationReport.Input(input: chunk.names[row], target: target, targetLabel: classifier.labels?[target],
                                           score: 0, curve: nil)
        switch metric {
        case .removal(let removal):
            let curve = try removal.curve(classifier, input: input, attributions: maps!.rows(row..<(row + 1)), target: target)
            entry.curve = curve.scores
            entry.score = curve.auc
        case .infidelity(let infidelity):
            entry.score = try infidelity.value(classifier, input: input, attributions: maps!.rows(row..<(row + 1)), target: target)
        case .sensitivity(let sensitivity):
            guard let maker else {
                throw ElucidateError(.invalidArgument, "sensitivity-max recomputes the map: give a method, not attributions")
            }
            entry.score = try sensitivity.value(input: input) { batch throws(ElucidateError) in
                try explainer.explain(method: maker.name, options: maker.options, inputs: batch,
                                      targets: Array(repeating: target, count: batch.shape[0])).attributions
            }
        }
        return entry
    }
}

/// A method made ready for an evaluation's chunks: each input's map is the one `explain` gives
/// for that input alone — rows go through the method together only when it runs forward passes
/// alone without random draws (`PreparedExplanation.grouping`), and a stochastic method draws
/// with the same seed for every input — so a score never depends on the inputs beside it.
struct MethodMaps {
    /// The method's command-line name and its options.
    let name: String
    let options: Options
    let prepared: PreparedExplanation
    /// The preset the inputs went through (nil: the model's).
    let preset: PreprocessingPreset?
    private var grouping: BatchWork.Grouping?

    init(_ name: String, _ options: Options, preset: PreprocessingPreset?) throws(ElucidateError) {
        self.name = name
        self.options = options
        self.preset = preset
        prepared = try ExplanationPlan(method: name, options: options).prepared()
    }

    /// The maps of the chunk's rows for `targets`, `[n, …]`.
    mutating func maps(_ explainer: Explainer, _ chunk: EvaluationChunk, targets: [Int]) throws(ElucidateError) -> Tensor {
        let mode = grouping ?? prepared.grouping(chunk.inputs.rows(0..<1),
                                                 preset: preset ?? explainer.classifier.preset ?? .torchvision)
        grouping = mode
        func run(_ rows: Range<Int>) throws(ElucidateError) -> Tensor {
            let batch = ExplanationBatch(names: Array(chunk.names[rows]), inputs: chunk.inputs.rows(rows),
                                         targets: Array(targets[rows]))
            return try explainer.run(prepared, batches: [batch], preset: preset).attributions
        }
        if mode == .batched || chunk.count == 1 { return try run(0..<chunk.count) }
        return Tensor.concatenatingRows(try (0..<chunk.count).map { row throws(ElucidateError) in try run(row..<(row + 1)) })
    }
}

/// What `Evaluator` returns.
public struct Evaluation: Sendable {
    /// Every row's score, curve (deletion, insertion) and the mean.
    public var report: EvaluationReport

    /// The report as `elucidate evaluate --json` prints it.
    public func reportJSON() throws(ElucidateError) -> String {
        try JSONOutput.string(report)
    }
}

/// What an evaluation did, as `elucidate evaluate --json` prints it: the metric's score of each
/// row under the key `auc` (deletion, insertion) or the metric's name (`infidelity`,
/// `sensitivity-max`), deletion's and insertion's `curve`, and the scores' `mean`,
/// `standardDeviation` and `count` over the inputs.
public struct EvaluationReport: Encodable, Sendable {
    /// One evaluated row.
    public struct Input: Sendable {
        /// The row's name (an image path, or `input[i]`).
        public var input: String
        /// The class evaluated.
        public var target: Int
        /// The class's label, when the model has labels.
        public var targetLabel: String?
        /// The metric's value: the AUC for deletion and insertion.
        public var score: Double
        /// Deletion's and insertion's S + 1 probabilities; nil for the other metrics.
        public var curve: [Float]?
    }

    /// The metric.
    public var metric: EvaluationMetric
    /// The model as given (`--model`'s text or the weights file's path).
    public var model: String
    /// The method that made the maps, or nil for given maps.
    public var method: String?
    /// The file the maps came from, when they were given as one.
    public var attributions: String?
    /// The metric's options in force, by name, as command-line text (defaults included).
    public var options: [String: String]
    /// The mean of the rows' scores.
    public var mean: Double
    /// Their spread: the population standard deviation (`numpy.std`), 0 for one row.
    public var standardDeviation: Double
    /// Wall-clock time of the run, in seconds.
    public var elapsedSeconds: Double
    /// Deletion's and insertion's masked images through the model per second, over the whole
    /// run (the maps' computation included); nil for the other metrics.
    public var imagesPerSecond: Double?
    /// One entry per row, in order.
    public var inputs: [Input]

    /// The key of a row's score: `auc` for deletion and insertion, else the metric's name.
    public var scoreKey: String {
        metric == .deletion || metric == .insertion ? "auc" : metric.rawValue
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(metric.rawValue, forKey: Key("metric"))
        try container.encode(model, forKey: Key("model"))
        try container.encodeIfPresent(method, forKey: Key("method"))
        try container.encodeIfPresent(attributions, forKey: Key("attributions"))
        try container.encode(options, forKey: Key("options"))
        try container.encode(mean, forKey: Key("mean"))
        try container.encode(standardDeviation, forKey: Key("standardDeviation"))
        try container.encode(inputs.count, forKey: Key("count"))
        try container.encode(elapsedSeconds, forKey: Key("elapsedSeconds"))
        try container.encodeIfPresent(imagesPerSecond, forKey: Key("imagesPerSecond"))
        var rows = container.nestedUnkeyedContainer(forKey: Key("inputs"))
        for input in inputs {
            var row = rows.nestedContainer(keyedBy: Key.self)
            try row.encode(input.input, forKey: Key("input"))
            try row.encode(input.target, forKey: Key("target"))
            try row.encodeIfPresent(input.targetLabel, forKey: Key("targetLabel"))
            try row.encode(input.score, forKey: Key(scoreKey))
            try row.encodeIfPresent(input.curve, forKey: Key("curve"))
        }
    }
}

extension Evaluation {
    /// Deletion's or insertion's curves, one per row, as a chart (`CurvePlot`) titled with the
    /// metric and the method; nil for the metrics without a curve.
    public func curvePlot(width: Int = 480, height: Int = 320) -> Canvas? {
        let curves = report.inputs.compactMap { row in row.curve.map { (name: row.input, values: $0) } }
        guard !curves.isEmpty else { return nil }
        let title = "\(report.metric.rawValue) of \(report.method ?? "the attributions"): target probability vs fraction of pixels"
        return CurvePlot.draw(curves, title: title, width: width, height: height + BitmapFont.cellHeight * curves.count)
    }
}
