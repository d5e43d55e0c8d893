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
        try compare(methods: methods,
                    inputs: .tensor(inputs, names: names, targets: targets, imagesPerBatch: Self.oneChunk(inputs)), seed: seed)
    }

    /// `compare(methods:inputs:targets:names:seed:)` over a data set, `inputs.imagesPerBatch`
    /// inputs at a time: every input's values per method, and each metric's mean, standard
    /// deviation and count. Each input is scored for its own target (a manifest's) if it has
    /// one, else for its predicted class.
    public func compare(methods: [String], inputs: EvaluationInputs, seed: UInt64) throws(ElucidateError) -> ComparisonReport {
        let started = Date()
        guard !methods.isEmpty else { throw ElucidateError(.invalidArgument, "give at least one method to compare") }
        let seedOption = Options(["seed": .string(String(seed))])
        // Every method and metric is checked, and the cascade built, before any input is read.
        var makers = try methods.map { method throws(ElucidateError) in
            _ = try ExplanationPlan(method: method, options: Options())  // names the method's own problem first
            return try MethodMaps(method, seedOption, preset: inputs.preset)
        }
        func metric(_ metric: EvaluationMetric, _ options: Options) throws(ElucidateError) -> PreparedMetric {
            try EvaluationPlan(metric: metric.rawValue, options: options).metricValue()
        }
        let deletion = try metric(.deletion, Options()), insertion = try metric(.insertion, Options())
        let infidelity = try metric(.infidelity, seedOption), sensitivity = try metric(.sensitivityMax, seedOption)
        let cascade = try SanityCascade(self, weights: nil, seed: seed)
        let explainer = Explainer(classifier: classifier, modelName: modelName)
        var rows: [[ComparisonReport.Input]] = Array(repeating: [], count: methods.count)  // [method][input]
        try inputs.forEachChunk(classifier) { chunk throws(ElucidateError) in
            let rowTargets = try targets(chunk, .predicted)
            for index in methods.indices {
                let maps = try makers[index].maps(explainer, chunk, targets: rowTargets)
                guard maps.shape == chunk.inputs.shape else {
                    throw ElucidateError(.invalidArgument,
                                         "\(methods[index]) gives maps of shape \(maps.shape), not the input's \(chunk.inputs.shape): compare takes input-attribution methods")
                }
                let sanity = try cascade.compare(&makers[index], chunk, original: maps, targets: rowTargets).comparisons
                for row in 0..<chunk.count {
                    func value(_ metric: PreparedMetric) throws(ElucidateError) -> Double {
                        try score(metric, chunk, row: row, target: rowTargets[row], maps: maps, maker: makers[index],
                                  explainer: explainer).score
                    }
                    rows[index].append(ComparisonReport.Input(
                        input: chunk.names[row], target: rowTargets[row],
                        deletion: try value(deletion), insertion: try value(insertion), infidelity: try value(infidelity),
                        sensitivityMax: try value(sensitivity), sanitySpearmanAbs: sanity.last?[row].spearmanAbs ?? .nan))
                }
            }
        }
        return ComparisonReport(model: modelName, seed: String(seed), inputs: rows[0].count,
                                methods: zip(methods, rows).map { ComparisonReport.Row(method: $0, inputs: $1) },
                                elapsedSeconds: Date().timeIntervalSince(started), count: rows[0].count)
    }
}

/// Methods side by side on every metric, as `elucidate evaluate compare --json` prints it.
public struct ComparisonReport: Codable, Sendable {
    /// One method's means over the inputs, their spreads, and every input's values.
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
        /// Each metric's mean, standard deviation and count over the inputs, by the keys above.
        public var spread: [String: Spread]
        /// Every input's values.
        public var inputs: [Input]

        /// The row of `method` from its inputs' values (at least one).
        init(method: String, inputs: [Input]) {
            self.method = method
            self.inputs = inputs
            let metrics: [(String, KeyPath<Input, Double>)] = [
                ("deletion", \.deletion), ("insertion", \.insertion), ("infidelity", \.infidelity),
                ("sensitivityMax", \.sensitivityMax), ("sanitySpearmanAbs", \.sanitySpearmanAbs),
            ]
            spread = Dictionary(uniqueKeysWithValues: metrics.map { name, key in (name, Spread(inputs.map { $0[keyPath: key] })) })
            deletion = spread["deletion"]!.mean
            insertion = spread["insertion"]!.mean
            infidelity = spread["infidelity"]!.mean
            sensitivityMax = spread["sensitivityMax"]!.mean
            sanitySpearmanAbs = spread["sanitySpearmanAbs"]!.mean
        }
    }

    /// One input's values for one method.
    public struct Input: Codable, Sendable {
        /// The input's name (its path, or `input[i]`).
        public var input: String
        /// The class it was scored for.
        public var target: Int
        /// Its deletion AUC.
        public var deletion: Double
        /// Its insertion AUC.
        public var insertion: Double
        /// Its infidelity.
        public var infidelity: Double
        /// Its sensitivity-max.
        public var sensitivityMax: Double
        /// Its final-stage sanity correlation (Spearman, absolute maps).
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
    /// How many inputs (as `inputs`, under the key every evaluation report has).
    public var count: Int
}
