import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN
import Foundation

/// LIME (Ribeiro et al.), as Captum's `Lime` with its defaults: each sample switches every
/// feature on with probability ½ (off features take the baseline), is weighted by the
/// exponential kernel of its cosine distance to the input, exp(−d² / (2·width²)) with
/// d = 1 − cos(input, perturbed), and an interpretable linear model of the target's logit
/// on the on/off indicators gives each feature's attribution.
///
/// As in `KernelSHAP`, the features are the mask's ids 0…K−1. 25 samples by default, as
/// Captum's `Lime.attribute`.
public struct LIME: FeatureMaskAttributionMethod {
    /// Draws its samples from `seed`.
    public var isStochastic: Bool { true }

    /// The interpretable model fitted to the samples.
    public enum Surrogate: String, Sendable, CaseIterable {
        /// Weighted Lasso with α = `alpha` (Captum's default, α = 0.01).
        case lasso
        /// Weighted least squares.
        case leastSquares = "least-squares"
    }

    /// The features: groups of input elements switched together.
    public var mask: FeatureMask
    /// What switched-off features take; zero by default.
    public var baseline: Baseline
    /// Perturbed samples per input (Captum's `n_samples`).
    public var samples: Int
    /// Lasso (Captum's default) or least squares.
    public var surrogate: Surrogate
    /// The Lasso's regularisation strength α (ignored by least squares).
    public var alpha: Double
    /// The similarity kernel's width in exp(−d² / (2·width²)) (Captum's default 1).
    public var kernelWidth: Double
    /// Samples evaluated per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    /// Seeds the samples drawn: one seed, one result, bit for bit.
    public var seed: UInt64
    public var progress: AttributionProgress?

    /// LIME over the features of `mask` with Captum's defaults (25 samples, Lasso α = 0.01,
    /// kernel width 1); the seed is required so that a run can be repeated.
    public init(mask: FeatureMask, baseline: Baseline = .zero, samples: Int = 25, surrogate: Surrogate = .lasso,
                alpha: Double = 0.01, kernelWidth: Double = 1.0, perturbationsPerEval: Int = 16, seed: UInt64,
                progress: AttributionProgress? = nil) {
        self.mask = mask
        self.baseline = baseline
        self.samples = samples
        self.surrogate = surrogate
        self.alpha = alpha
        self.kernelWidth = kernelWidth
        self.perturbationsPerEval = perturbationsPerEval
        self.seed = seed
        self.progress = progress
    }

    /// Copies scored: `samples` per input row.
    public func progressTotal(inputShape: [Int]) -> Int {
        saturatingProduct(samples, inputShape[0])
    }

    /// The memory the surrogate fit of the largest input row needs (`SurrogateMemory.bytes`);
    /// nil when it cannot even be counted.
    public func requiredMemory(inputShape: [Int]) throws(ElucidateError) -> Int? {
        SurrogateMemory.bytes(samples: samples, features: try featureCounts(inputShape: inputShape).max() ?? 0)
    }

    /// Refuses, before anything is allocated, a sample count whose surrogate fit would not fit
    /// in `MemoryBudget` (the fit needs every sample at once; see `SurrogateMemory`).
    public func checkMemory(inputShape: [Int]) throws(ElucidateError) {
        try SurrogateMemory.check("LIME", samples: samples, features: try featureCounts(inputShape: inputShape).max() ?? 0,
                                  leastSquares: surrogate == .leastSquares)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard samples >= 1, perturbationsPerEval >= 1, kernelWidth > 0, alpha >= 0 else {
            throw ElucidateError(.invalidArgument, "LIME needs samples ≥ 1, perturbations per eval ≥ 1, a positive kernel width and alpha ≥ 0")
        }
        try checkMemory(inputShape: inputs.shape)
        let baselines = try baseline.expanded(like: inputs)
        let rowShape = Array(inputs.shape.dropFirst())
        let rowSize = rowShape.reduce(1, *)
        let rows = inputs.shape[0]
        let batcher = PerturbationBatcher(model: model, perPass: perturbationsPerEval)
        var random = SeededRandom(seed: seed)
        var values = [Float](repeating: 0, count: inputs.count)
        for row in 0..<rows {
            let ids = try mask.expanded(row: row, inputShape: inputs.shape)
            let (features, members) = featureGroups(ids)
            let count = features.count
            // One sample after another, `count` on/off flags each.
            let coalitions = (0..<(samples * count)).map { _ in random.next() >> 63 == 1 }
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            var inputNorm = 0.0
            for i in 0..<rowSize { inputNorm += Double(input[i]) * Double(input[i]) }
            var weights = [Double](repeating: 0, count: samples)
            let scores = try batcher.scores(count: samples, rowShape: rowShape, target: targets[row],
                                            passed: { progress?(row * samples + $0, rows * samples) }) { index, out in
                let on = coalitions[(index * count)..<((index + 1) * count)]
                compose(on.indices.lazy.filter { on[$0] }.map { $0 - index * count }, members: members,
                        from: input, over: base, count: rowSize, into: out)
                var dot = 0.0, norm = 0.0
                for i in 0..<rowSize {
                    dot += Double(input[i]) * Double(out[i])
                    norm += Double(out[i]) * Double(out[i])
                }
                // torch's cosine_similarity clamps each norm at 1e-8.
                let distance = 1 - dot / (max(inputNorm.squareRoot(), 1e-8) * max(norm.squareRoot(), 1e-8))
                weights[index] = Foundation.exp(-distance * distance / (2 * kernelWidth * kernelWidth))
            }
            var x = SampleMatrix(indicators: coalitions, columns: count)
            let y = scores.map(Double.init)
            let coefficients = surrogate == .lasso ? weightedLasso(&x, y, weights: weights, alpha: alpha).1
                                                   : try weightedLeastSquares(&x, y, weights: weights).coefficients
            spread({ Float(coefficients[$0]) }, over: members, into: &values, offset: row * rowSize)
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values),
                           details: ["seed": String(seed), "surrogate": surrogate.rawValue])
    }
}
