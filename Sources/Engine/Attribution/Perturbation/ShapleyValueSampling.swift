import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Shapley value sampling (Castro et al.), as Captum's `ShapleyValueSampling`: for each of
/// `samples` random orders of the features, the features are switched from the baseline to
/// the input one at a time and each is credited with the change of the target's logit it
/// caused; attributions are the averages. Each group of the feature mask is one feature.
public struct ShapleyValueSampling: FeatureMaskAttributionMethod {
    /// Draws its samples from `seed`.
    public var isStochastic: Bool { true }

    /// The features: groups of input elements switched together.
    public var mask: FeatureMask
    /// What a feature is before it is switched to the input; zero by default.
    public var baseline: Baseline
    /// Random feature orders per input (Captum's `n_samples`).
    public var samples: Int
    /// Evaluations per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    /// Seeds the random orders: the same seed gives the same attributions bit for bit.
    public var seed: UInt64
    public var progress: AttributionProgress?

    /// Shapley value sampling over the features of `mask` with `samples` orders (Captum's
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

    /// Copies scored: samples × the features of every input row.
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        saturatingProduct(samples, try featureCounts(inputShape: inputShape).reduce(0) { saturatingSum($0, $1) })
    }

    /// Evaluations a chunk of permutations aims at (2¹⁶: 768 KiB of orders and scores). Tests lower it.
    var chunkEvaluations = 1 << 16

    /// Random orders drawn and scored together for a row of `features` features. Memory is
    /// bounded by it, not by `samples`: the orders are drawn chunk by chunk from the one
    /// generator (the same orders as drawing them all first), and each chunk's evaluations
    /// fill whole forward passes (a multiple of `perturbationsPerEval`), so the passes, and
    /// the numbers, are those of scoring everything at once.
    func permutationsPerChunk(features: Int) -> Int {
        let perPass = max(1, perturbationsPerEval), count = max(1, features)
        var (a, b) = (perPass, count)
        while b != 0 { (a, b) = (b, a % b) }
        let aligned = perPass / a  // the fewest orders whose evaluations fill whole passes
        let target = max(1, chunkEvaluations / count)
        if aligned <= target { return aligned * (target / aligned) }
        return aligned <= (1 << 22) / count ? aligned : target
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
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            let perChunk = permutationsPerChunk(features: count)
            var sums = [Double](repeating: 0, count: count)
            var done = 0
            while done < samples {
                let chunk = min(samples - done, perChunk)
                let orders = (0..<chunk).map { _ in Array(0..<count).shuffled(using: &random) }
                let offset = saturatingSum(reported, saturatingProduct(done, count))
                let scores = try batcher.scores(count: chunk * count, rowShape: rowShape, target: targets[row],
                                                passed: { progress?(saturatingSum(offset, $0), progressTotal) }) { index, out in
                    let (sample, step) = (index / count, index % count)
                    compose(orders[sample][0...step], members: members, from: input, over: base, count: rowSize, into: out)
                }
                for sample in 0..<chunk {
                    var previous = baselineScores[row]
                    for step in 0..<count {
                        let score = scores[sample * count + step]
                        sums[orders[sample][step]] += Double(score - previous)
                        previous = score
                    }
                }
                done += chunk
            }
            spread({ Float(sums[$0] / Double(samples)) }, over: members, into: &values, offset: row * rowSize)
            reported = saturatingSum(reported, saturatingProduct(samples, count))
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values), details: ["seed": String(seed)])
    }
}
