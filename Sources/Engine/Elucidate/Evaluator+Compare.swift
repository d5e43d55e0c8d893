import Foundation

extension Evaluator {
    /// Ranks `methods` (command-line names, each with its default options) on one model and
    /// `inputs` `[N, C, H, W]` by every metric: deletion and insertion AUC (default steps and
    /// baselines), infidelity (Gaussian perturbations, stdev 0.1, 10 samples), sensitivity-max
    /// (radius 0.02, 10 samples) and the sanity check's final-stage Spearman correlation of
    /// absolute values — each the mean over the inputs, every draw from `seed`. The methods
    /// must give maps of the input's shape (infidelity needs them).
    public func compare(methods: [String], inputs: Tensor, targets: [Int]? = nil, names: [String]? = nil,
                        seed: UInt64) throws(ElucidateError) -> ComparisonReport {
        let started = Date()
        guard !methods.isEmpty else { throw ElucidateError(.invalidArgument, "give at least one method to compare") }
        let seedOption: Options = Options(["seed": .string(String(seed))])
        var rows: [ComparisonReport.Row] = []
        for method in methods {
            _ = try ExplanationPlan(method: method, options: Options())  // a bad name fails before any work
            let maps = try Explainer(classifier: classifier, modelName: modelName)
                .explain(method: method, options: seedOption, inputs: inputs, targets: targets, names: names)
            guard maps.attributions.shape == inputs.shape else {
                throw ElucidateError(.invalidArgument,
                                     "\(method) gives maps of shape \(maps.attributions.shape), not the input's \(inputs.shape): compare takes input-attribution methods")
            }
            let rowTargets = maps.report.inputs.map(\.target)
            func mean(_ metric: EvaluationMetric, _ options: Options, _ source: AttributionSource) throws(ElucidateError) -> Double {
                try evaluate(metric: metric.rawValue, options: options, inputs: inputs, attributions: source,
                             targets: rowTargets, names: names).report.mean
            }
            let given = AttributionSource.given(maps.attributions)
            let sanity = try sanityCheck(method: method, options: seedOption, inputs: inputs, targets: rowTargets,
                                         names: names, seed: seed).report
            rows.append(ComparisonReport.Row(
                method: method,
                deletion: try mean(.deletion, Options(), given),
                insertion: try mean(.insertion, Options(), given),
                infidelity: try mean(.infidelity, seedOption, given),
                sensitivityMax: try mean(.sensitivityMax, seedOption, .method(method, seedOption)),
                sanitySpearmanAbs: sanity.layers.last?.spearmanAbs ?? .nan))
        }
        return ComparisonReport(model: modelName, seed: String(seed), inputs: inputs.shape[0], methods: rows,
                                elapsedSeconds: Date().timeIntervalSince(started))
    }
}

/// Methods side by side on every metric, as `elucidate evaluate compare --json` prints it.
public struct ComparisonReport: Codable, Sendable {
    /// One method's means over the inputs.
    public struct Row: Codable, Sendable {
        /// The method's command-line name.
        public var method: String
        /// Deletion AUC (lower is better).
        public var deletion: Double
        /// Insertion AUC (higher is better).
        public var insertion: Double
        /// Infidelity (lower is better).
        public var infidelity: Double
        /// Sensitivity-max (lower is better).
        public var sensitivityMax: Double
        /// Spearman correlation of absolute maps after the whole model is randomised (lower is
        /// better: a map that stays alike does not depend on the model's weights).
        public var sanitySpearmanAbs: Double
    }

    /// The model as given.
    public var model: String
    /// The seed of every draw, as text.
    public var seed: String
    /// How many inputs each mean is over.
    public var inputs: Int
    /// One row per method, in the order given.
    public var methods: [Row]
    /// Wall-clock time of the run, in seconds.
    public var elapsedSeconds: Double
}
