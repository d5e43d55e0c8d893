/// Shapley value sampling (Castro et al.), as Captum's `ShapleyValueSampling`: for each of
/// `samples` random orders of the features, the features are switched from the baseline to
/// the input one at a time and each is credited with the change of the target's logit it
/// caused; attributions are the averages. Each group of the feature mask is one feature.
public struct ShapleyValueSampling: FeatureMaskAttributionMethod {
    public var mask: FeatureMask
    public var baseline: Baseline
    public var samples: Int
    /// Evaluations per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    /// Seeds the random orders: the same seed gives the same attributions bit for bit.
    public var seed: UInt64
    public var progress: AttributionProgress?

    public init(mask: FeatureMask, baseline: Baseline = .zero, samples: Int = 25, perturbationsPerEval: Int = 16,
                seed: UInt64, progress: AttributionProgress? = nil) {
        self.mask = mask
        self.baseline = baseline
        self.samples = samples
        self.perturbationsPerEval = perturbationsPerEval
        self.seed = seed
        self.progress = progress
    }

    /// Copies scored: samples × the features of every input row.
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        samples * (try featureCounts(inputShape: inputShape).reduce(0, +))
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 1, perturbationsPerEval >= 1 else {
            throw ElucidateError(.invalidArgument, "samples and perturbations per eval must be at least 1")
        }
        let baselines = try baseline.expanded(like: inputs)
        let rowShape = Array(inputs.shape.dropFirst())
        let rowSize = rowShape.reduce(1, *)
        let rows = inputs.shape[0]
        let batcher = PerturbationBatcher(model: model, perPass: perturbationsPerEval)
        let baselineScores = try batcher.initialScores(baselines, targets: targets)
        var random = SeededRandom(seed: seed)
        var values = [Float](repeating: 0, count: inputs.count)
        let progressTotal = progress == nil ? 0 : try self.progressTotal(inputShape: inputs.shape)
        var reported = 0
        for row in 0..<rows {
            let ids = try mask.expanded(row: row, inputShape: inputs.shape)
            let (features, members) = featureGroups(ids)
            let count = features.count
            let orders = (0..<samples).map { _ in Array(0..<count).shuffled(using: &random) }
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            let total = samples * count
            let offset = reported
            let scores = try batcher.scores(count: total, rowShape: rowShape, target: targets[row],
                                            passed: { progress?(offset + $0, progressTotal) }) { index, out in
                let (sample, step) = (index / count, index % count)
                compose(orders[sample][0...step], members: members, from: input, over: base, count: rowSize, into: out)
            }
            var sums = [Double](repeating: 0, count: count)
            for sample in 0..<samples {
                var previous = baselineScores[row]
                for step in 0..<count {
                    let score = scores[sample * count + step]
                    sums[orders[sample][step]] += Double(score - previous)
                    previous = score
                }
            }
            spread({ Float(sums[$0] / Double(samples)) }, over: members, into: &values, offset: row * rowSize)
            reported += total
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values), details: ["seed": String(seed)])
    }
}
