import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

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
    /// Draws its samples from `seed`.
    public var isStochastic: Bool { true }

    /// The features: groups of input elements switched together.
    public var mask: FeatureMask
    /// What switched-off features take; zero by default.
    public var baseline: Baseline
    /// Coalitions evaluated per input (the two fixed ones included).
    public var samples: Int
    /// Coalitions evaluated per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    /// Seeds the coalitions drawn: one seed, one result, bit for bit.
    public var seed: UInt64
    public var progress: AttributionProgress?

    /// Kernel SHAP over the features of `mask` with `samples` coalitions per input (Captum's
    /// default 25); the seed is required so that a run can be repeated.
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
        try featureCounts(inputShape: inputShape).reduce(0) { saturatingSum($0, Self.coalitionCount(features: $1, samples: samples)) }
    }

    /// The memory the surrogate fit of the largest input row needs (`SurrogateMemory.bytes`);
    /// nil when it cannot even be counted.
    public func requiredMemory(inputShape: [Int]) throws(ElucidateError) -> Int? {
        let features = try featureCounts(inputShape: inputShape).max() ?? 0
        return SurrogateMemory.bytes(samples: Self.coalitionCount(features: features, samples: samples), features: features)
    }

    /// Refuses, before anything is allocated, a sample count whose surrogate fit would not fit
    /// in `MemoryBudget` (the fit needs every coalition at once; see `SurrogateMemory`).
    public func checkMemory(inputShape: [Int]) throws(ElucidateError) {
        let features = try featureCounts(inputShape: inputShape).max() ?? 0
        try SurrogateMemory.check("Kernel SHAP", samples: Self.coalitionCount(features: features, samples: samples),
                                  features: features, leastSquares: true)
    }

    /// `samples` coalitions over `count` features (at most 2 for one feature), one after
    /// another, `count` flags each.
    static func coalitions(count: Int, samples: Int, random: inout SeededRandom) -> [Bool] {
        let total = coalitionCount(features: count, samples: samples)
        var result: [Bool] = []
        result.reserveCapacity(total * count)
        result += [Bool](repeating: true, count: count)
        result += [Bool](repeating: false, count: count)
        guard count > 1 else { return Array(result.prefix(total * count)) }
        let sizes = Array(1..<count)
        let probabilities = sizes.map { Double(count - 1) / Double($0 * (count - $0)) }
        let sum = probabilities.reduce(0, +)
        var drawn = 2
        while drawn < total {
            var u = random.nextUniform() * sum
            var size = sizes.last!
            for (k, p) in zip(sizes, probabilities) {
                if u < p { size = k; break }
                u -= p
            }
            let start = result.count
            result += repeatElement(false, count: count)
            for index in Array(0..<count).shuffled(using: &random).prefix(size) { result[start + index] = true }
            drawn += 1
        }
        return Array(result.prefix(total * count))
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 2, perturbationsPerEval >= 1 else {
            throw ElucidateError(.invalidArgument, "Kernel SHAP needs at least 2 samples and 1 perturbation per eval")
        }
        try checkMemory(inputShape: inputs.shape)
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
            let count = features.count
            let coalitions = Self.coalitions(count: count, samples: samples, random: &random)
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            let total = coalitions.count / count
            let offset = reported
            let scores = try batcher.scores(count: total, rowShape: rowShape, target: targets[row],
                                            passed: { progress?(offset + $0, progressTotal) }) { index, out in
                let on = coalitions[(index * count)..<((index + 1) * count)]
                compose(on.indices.lazy.filter { on[$0] }.map { $0 - index * count }, members: members,
                        from: input, over: base, count: rowSize, into: out)
            }
            let weights = (0..<total).map { index -> Double in
                let on = coalitions[(index * count)..<((index + 1) * count)].lazy.filter { $0 }.count
                return on == 0 || on == count ? 1e6 : 1
            }
            var x = SampleMatrix(indicators: coalitions, columns: count)
            let (_, coefficients) = try weightedLeastSquares(&x, scores.map(Double.init), weights: weights)
            spread({ Float(coefficients[$0]) }, over: members, into: &values, offset: row * rowSize)
            reported += total
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values), details: ["seed": String(seed)])
    }
}
