import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Feature ablation, as Captum's `FeatureAblation`: each group of the feature mask in turn
/// is replaced by the baseline, and every element of the group is attributed the drop of
/// the target's logit.
public struct FeatureAblation: FeatureMaskAttributionMethod {
    /// Which input elements are ablated together.
    public var mask: FeatureMask
    /// What an ablated group is replaced by; zero by default.
    public var baseline: Baseline
    /// Ablated copies per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    public var progress: AttributionProgress?

    /// Feature ablation of the groups of `mask`, `perturbationsPerEval` copies per pass.
    public init(mask: FeatureMask, baseline: Baseline = .zero, perturbationsPerEval: Int = 16,
                progress: AttributionProgress? = nil) {
        self.mask = mask
        self.baseline = baseline
        self.perturbationsPerEval = perturbationsPerEval
        self.progress = progress
    }

    /// Ablated copies scored: the features of every input row.
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        try featureCounts(inputShape: inputShape).reduce(0, +)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard perturbationsPerEval >= 1 else {
            throw ElucidateError(.invalidArgument, "perturbations per eval must be at least 1")
        }
        let baselines = try baseline.expanded(like: inputs)
        let rowShape = Array(inputs.shape.dropFirst())
        let rowSize = rowShape.reduce(1, *)
        let rows = inputs.shape[0]
        let batcher = PerturbationBatcher(model: model, perPass: perturbationsPerEval)
        let initial = try batcher.initialScores(inputs, targets: targets)
        var values = [Float](repeating: 0, count: inputs.count)
        var featureCount = 0
        let progressTotal = progress == nil ? 0 : try self.progressTotal(inputShape: inputs.shape)
        var reported = 0
        for row in 0..<rows {
            let ids = try mask.expanded(row: row, inputShape: inputs.shape)
            let (features, members) = featureGroups(ids)
            featureCount = max(featureCount, features.count)
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            let total = features.count
            let offset = reported
            let scores = try batcher.scores(count: total, rowShape: rowShape, target: targets[row],
                                            passed: { progress?(offset + $0, progressTotal) }) { index, out in
                // Feature `index` switched off: its elements from the baseline, the rest from the input.
                compose(CollectionOfOne(index), members: members, from: base, over: input, count: rowSize, into: out)
            }
            spread({ initial[row] - scores[$0] }, over: members, into: &values, offset: row * rowSize)
            reported += total
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values), details: ["features": String(featureCount)])
    }
}
