/// Kernel SHAP (Lundberg & Lee), as Captum's `KernelShap`: coalitions of features are drawn
/// with the Shapley kernel (a coalition size k of M features with probability ∝
/// (M − 1) / (k (M − k)), then k features uniformly; the full and the empty coalition come
/// first with a weight of 10⁶), the model is evaluated with the coalition's features from
/// the input and the others from the baseline, and a weighted linear regression of the
/// target's logit on the coalition indicators (scikit-learn's LinearRegression, as Captum's:
/// `weightedLeastSquares`) gives each feature's attribution.
///
/// The features are the mask's ids 0…K−1 (`FeatureMask` refuses gaps, which Captum would
/// sample and regress on as features that switch nothing).
public struct KernelSHAP: FeatureMaskAttributionMethod {
    public var mask: FeatureMask
    public var baseline: Baseline
    /// Coalitions evaluated per input (the two fixed ones included).
    public var samples: Int
    public var perturbationsPerEval: Int
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

    /// How many coalitions `coalitions(count:samples:)` draws: `samples`, or at most the two
    /// fixed ones for a single feature.
    static func coalitionCount(features: Int, samples: Int) -> Int {
        features > 1 ? samples : min(samples, 2)
    }

    /// Copies scored: the coalitions of every input row (`samples` each, at most 2 for a row
    /// of one feature).
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        try featureCounts(inputShape: inputShape).reduce(0) { $0 + Self.coalitionCount(features: $1, samples: samples) }
    }

    /// `samples` coalitions over `count` features.
    static func coalitions(count: Int, samples: Int, random: inout SeededRandom) -> [[Bool]] {
        var result: [[Bool]] = [[Bool](repeating: true, count: count), [Bool](repeating: false, count: count)]
        guard count > 1 else { return Array(result.prefix(samples)) }
        let sizes = Array(1..<count)
        let probabilities = sizes.map { Double(count - 1) / Double($0 * (count - $0)) }
        let total = probabilities.reduce(0, +)
        while result.count < samples {
            var u = random.nextUniform() * total
            var size = sizes.last!
            for (k, p) in zip(sizes, probabilities) {
                if u < p { size = k; break }
                u -= p
            }
            var coalition = [Bool](repeating: false, count: count)
            for index in Array(0..<count).shuffled(using: &random).prefix(size) { coalition[index] = true }
            result.append(coalition)
        }
        return Array(result.prefix(samples))
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 2, perturbationsPerEval >= 1 else {
            throw ElucidateError(.invalidArgument, "Kernel SHAP needs at least 2 samples and 1 perturbation per eval")
        }
        let baselines = try baseline.expanded(like: inputs)
        let rowShape = Array(inputs.shape.dropFirst())
        let rowSize = rowShape.reduce(1, *)
        let rows = inputs.shape[0]
        let batcher = PerturbationBatcher(model: model, perPass: perturbationsPerEval)
        var random = SeededRandom(seed: seed)
        var values = [Float](repeating: 0, count: inputs.count)
        let progressTotal = progress == nil ? 0 : try self.progressTotal(inputShape: inputs.shape)
        var reported = 0
        for row in 0..<rows {
            let ids = try mask.expanded(row: row, inputShape: inputs.shape)
            let (features, members) = featureGroups(ids)
            let coalitions = Self.coalitions(count: features.count, samples: samples, random: &random)
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            let total = coalitions.count
            let offset = reported
            let scores = try batcher.scores(count: total, rowShape: rowShape, target: targets[row],
                                            passed: { progress?(offset + $0, progressTotal) }) { index, out in
                let on = coalitions[index]
                compose(on.indices.lazy.filter { on[$0] }, members: members, from: input, over: base, count: rowSize, into: out)
            }
            let x = coalitions.map { $0.map { $0 ? 1.0 : 0.0 } }
            let weights = coalitions.map { c -> Double in
                let on = c.filter { $0 }.count
                return on == 0 || on == c.count ? 1e6 : 1
            }
            let (_, coefficients) = try weightedLeastSquares(x, scores.map(Double.init), weights: weights)
            spread({ Float(coefficients[$0]) }, over: members, into: &values, offset: row * rowSize)
            reported += total
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values), details: ["seed": String(seed)])
    }
}
