import Foundation

extension Evaluator {
    /// Adebayo et al.'s sanity check (`CascadingRandomization`): explains `inputs` `[N, C, H, W]`
    /// with `method` and `options` (as `Explainer` takes them) on the model, then again after
    /// each stage of re-initialisation from the top (`fc`, `layer4` … `layer1`, `conv1`), and
    /// compares each map with the original (`MapComparison`; maps of at least 7×7 pixels).
    ///
    /// - Parameters:
    ///   - targets: one class per row, kept through every stage; default the `target` option
    ///     of `options`, else each row's prediction by the original model.
    ///   - weights: the model's state dict; nil reads it again from `classifier.source`.
    ///   - seed: the seed of every re-initialisation.
    public func sanityCheck(method: String, options: Options = Options(), inputs: Tensor, targets: [Int]? = nil,
                            names: [String]? = nil, weights: StateDict? = nil,
                            seed: UInt64) throws(ElucidateError) -> SanityCheck {
        try sanityCheck(method: method, options: options,
                        inputs: .tensor(inputs, names: names, targets: targets, imagesPerBatch: Self.oneChunk(inputs)),
                        weights: weights, seed: seed)
    }

    /// The sanity check over a data set, `inputs.imagesPerBatch` inputs at a time (the model's
    /// re-initialised stages built once): every input's comparisons, and per stage their mean
    /// and standard deviation over the inputs. Each input keeps its own target (a manifest's)
    /// if it has one, else the `target` option of `options`. `SanityCheck.maps` holds the first
    /// chunk's maps.
    public func sanityCheck(method: String, options: Options = Options(), inputs: EvaluationInputs,
                            weights: StateDict? = nil, seed: UInt64) throws(ElucidateError) -> SanityCheck {
        let started = Date()
        var maker = try MethodMaps(method, options, preset: inputs.preset)
        let cascade = try SanityCascade(self, weights: weights, seed: seed)
        let explainer = Explainer(classifier: classifier, modelName: modelName)
        var rows: [SanityReport.Input] = []
        var stageRows: [[MapComparison]] = Array(repeating: [], count: cascade.stages.count)  // [stage][input]
        var firstMaps: [Tensor]?
        try inputs.forEachChunk(classifier) { chunk throws(ElucidateError) in
            let rowTargets = try targets(chunk, maker.prepared.settings.target)
            let original = try maker.maps(explainer, chunk, targets: rowTargets)
            let (comparisons, maps) = try cascade.compare(&maker, chunk, original: original, targets: rowTargets)
            if firstMaps == nil { firstMaps = [original] + maps }
            for row in 0..<chunk.count {
                rows.append(SanityReport.Input(input: chunk.names[row], target: rowTargets[row],
                                               layers: cascade.entries(comparisons.map { $0[row] })))
            }
            for stage in comparisons.indices { stageRows[stage] += comparisons[stage] }
        }
        let means = zip(cascade.stages, stageRows).map { name, comparisons in SanityReport.Stage(layer: name, spread: comparisons) }
        let report = SanityReport(method: method, model: modelName, seed: String(seed), layers: means,
                                  elapsedSeconds: Date().timeIntervalSince(started), inputs: rows, count: rows.count)
        return SanityCheck(report: report, maps: firstMaps ?? [])
    }
}

/// The model re-initialised stage by stage from the top (`CascadingRandomization`), each stage
/// an explainer of its own, built once for all the chunks of a sanity check.
struct SanityCascade {
    /// The stages' names, top first.
    let stages: [String]
    let explainers: [Explainer]

    /// The cascade of `evaluator`'s model from `weights` (nil: read again from its source) with `seed`.
    init(_ evaluator: Evaluator, weights: StateDict?, seed: UInt64) throws(ElucidateError) {
        let classifier = evaluator.classifier
        var state: StateDict
        if let weights { state = weights } else {
            do { state = try Classifier.readWeights(from: classifier.source).stateDict } catch { throw error.at(classifier.source.path) }
        }
        var explainers: [Explainer] = []
        for randomized in try CascadingRandomization(seed: seed).cascade(state) {
            let network = try ResNet(stateDict: randomized, architecture: classifier.architecture)
            let model = Classifier(network: network, labels: classifier.labels, preset: classifier.preset, source: classifier.source)
            explainers.append(Explainer(classifier: model, modelName: evaluator.modelName))
        }
        self.explainers = explainers
        stages = CascadingRandomization.stages.map(\.name)
    }

    /// The chunk's maps after each stage, for the same `targets`, and how each row's compares
    /// with its `original` map: comparisons `[stage][row]`, maps `[stage]`.
    func compare(_ maker: inout MethodMaps, _ chunk: EvaluationChunk, original: Tensor,
                 targets: [Int]) throws(ElucidateError) -> (comparisons: [[MapComparison]], maps: [Tensor]) {
        var comparisons: [[MapComparison]] = []
        var maps: [Tensor] = []
        for explainer in explainers {
            let stageMaps = try maker.maps(explainer, chunk, targets: targets)
            maps.append(stageMaps)
            comparisons.append(try (0..<chunk.count).map { row throws(ElucidateError) in
                try MapComparison(stageMaps.rows(row..<(row + 1)), reference: original.rows(row..<(row + 1)))
            })
        }
        return (comparisons, maps)
    }

    /// One row's stages, top first.
    func entries(_ comparisons: [MapComparison]) -> [SanityReport.Stage] {
        zip(stages, comparisons).map { SanityReport.Stage(layer: $0, comparison: $1) }
    }
}

/// What `Evaluator.sanityCheck` returns: the report and the maps behind it.
public struct SanityCheck: Sendable {
    /// The comparisons per stage, as `--json` prints them.
    public var report: SanityReport
    /// The original maps, then the maps after each stage (`CascadingRandomization.stages`),
    /// each `[n, …]` as the method returns them: the inputs of the first chunk (all of them
    /// for a tensor).
    public var maps: [Tensor]

    /// The paper's figure for input `row`: the original map, then one per stage (`MapStrip`).
    public func figure(row: Int = 0) -> Canvas {
        let captions = ["original"] + report.layers.map { "\($0.layer)" }
        return MapStrip.draw(zip(captions, maps).map { (caption: $0, map: $1.rows(row..<(row + 1))) })
    }
}

/// What a sanity check found, as `elucidate evaluate sanity --json` prints it.
public struct SanityReport: Encodable, Sendable {
    /// One stage of the cascade and how the map after it compares with the original.
    public struct Stage: Encodable, Sendable {
        /// The stage: the last layer re-initialised (`fc`, `layer4` … `conv1`).
        public var layer: String
        /// Spearman's correlation of the signed maps.
        public var spearman: Double
        /// Spearman's correlation of their absolute values.
        public var spearmanAbs: Double
        /// SSIM of the normalised absolute maps.
        public var ssim: Double

        /// In the means over the inputs: the population standard deviation (`numpy.std`) of
        /// `spearman` over the inputs; nil for one input's stage.
        public var spearmanStandardDeviation: Double?
        /// The same of `spearmanAbs`.
        public var spearmanAbsStandardDeviation: Double?
        /// The same of `ssim`.
        public var ssimStandardDeviation: Double?
        /// How many inputs the means are over; nil for one input's stage.
        public var count: Int?

        init(layer: String, comparison: MapComparison) {
            self.layer = layer
            spearman = comparison.spearman
            spearmanAbs = comparison.spearmanAbs
            ssim = comparison.ssim
        }

        /// The mean and spread of `comparisons` (at least one).
        init(layer: String, spread comparisons: [MapComparison]) {
            self.layer = layer
            let spearman = Spread(comparisons.map(\.spearman)), spearmanAbs = Spread(comparisons.map(\.spearmanAbs))
            let ssim = Spread(comparisons.map(\.ssim))
            self.spearman = spearman.mean
            self.spearmanAbs = spearmanAbs.mean
            self.ssim = ssim.mean
            spearmanStandardDeviation = spearman.standardDeviation
            spearmanAbsStandardDeviation = spearmanAbs.standardDeviation
            ssimStandardDeviation = ssim.standardDeviation
            count = comparisons.count
        }
    }

    /// One input's stages.
    public struct Input: Encodable, Sendable {
        /// The row's name.
        public var input: String
        /// The class explained at every stage.
        public var target: Int
        /// Its stages, top first.
        public var layers: [Stage]
    }

    /// The method checked.
    public var method: String
    /// The model as given.
    public var model: String
    /// The seed of the re-initialisation, as text (a 64-bit value).
    public var seed: String
    /// Each stage's comparisons averaged over the inputs, with their standard deviations and
    /// count, top first.
    public var layers: [Stage]
    /// Wall-clock time of the run, in seconds.
    public var elapsedSeconds: Double
    /// One entry per input.
    public var inputs: [Input]
    /// How many inputs.
    public var count: Int
}
