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
        let started = Date()
        let explainer = Explainer(classifier: classifier, modelName: modelName)
        let original = try explainer.explain(method: method, options: options, inputs: inputs, targets: targets, names: names)
        let rowTargets = original.report.inputs.map(\.target)
        var state: StateDict
        if let weights { state = weights } else {
            do { state = try Classifier.readWeights(from: classifier.source).stateDict } catch { throw error.at(classifier.source.path) }
        }
        var stages: [[MapComparison]] = []  // [stage][row]
        var stageMaps: [Tensor] = []
        let cascade = try CascadingRandomization(seed: seed).cascade(state)
        for randomized in cascade {
            let network = try ResNet(stateDict: randomized, architecture: classifier.architecture)
            let model = Classifier(network: network, labels: classifier.labels, preset: classifier.preset, source: classifier.source)
            let maps = try Explainer(classifier: model, modelName: modelName)
                .explain(method: method, options: options, inputs: inputs, targets: rowTargets).attributions
            stageMaps.append(maps)
            var rows: [MapComparison] = []
            for row in 0..<inputs.shape[0] {
                rows.append(try MapComparison(maps.rows(row..<(row + 1)), reference: original.attributions.rows(row..<(row + 1))))
            }
            stages.append(rows)
        }
        let stageNames = CascadingRandomization.stages.map(\.name)
        func entries(_ comparisons: [MapComparison]) -> [SanityReport.Stage] {
            zip(stageNames, comparisons).map { SanityReport.Stage(layer: $0, comparison: $1) }
        }
        let inputsReport = original.report.inputs.enumerated().map { row, input in
            SanityReport.Input(input: input.input, target: input.target, layers: entries(stages.map { $0[row] }))
        }
        let means = stages.map { rows -> MapComparison in
            var mean = rows[0]
            let count = Double(rows.count)
            mean.spearman = rows.map(\.spearman).reduce(0, +) / count
            mean.spearmanAbs = rows.map(\.spearmanAbs).reduce(0, +) / count
            mean.ssim = rows.map(\.ssim).reduce(0, +) / count
            return mean
        }
        let report = SanityReport(method: method, model: modelName, seed: String(seed), layers: entries(means),
                                  elapsedSeconds: Date().timeIntervalSince(started), inputs: inputsReport)
        return SanityCheck(report: report, maps: [original.attributions] + stageMaps)
    }
}

/// What `Evaluator.sanityCheck` returns: the report and the maps behind it.
public struct SanityCheck: Sendable {
    /// The comparisons per stage, as `--json` prints them.
    public var report: SanityReport
    /// The original maps, then the maps after each stage (`CascadingRandomization.stages`),
    /// each `[N, …]` as the method returns them.
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

        init(layer: String, comparison: MapComparison) {
            self.layer = layer
            spearman = comparison.spearman
            spearmanAbs = comparison.spearmanAbs
            ssim = comparison.ssim
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
    /// Each stage's comparisons averaged over the inputs, top first.
    public var layers: [Stage]
    /// Wall-clock time of the run, in seconds.
    public var elapsedSeconds: Double
    /// One entry per input.
    public var inputs: [Input]
}
