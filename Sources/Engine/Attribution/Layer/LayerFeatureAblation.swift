import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Layer Feature Ablation, as Captum's `LayerFeatureAblation`: each group of a layer's units
/// (a layer mask's id) replaced by a baseline value in turn, and the drop in the target logit
/// F(x) − F(x with the group ablated) given to every unit of the group.
///
/// Shape: the layer's `[N, …]`. The mask broadcasts to the layer's shape (e.g. `[1, 1, h, w]`
/// groups positions across all channels); without one, every unit is its own group.
public struct LayerFeatureAblation: AttributionMethod {
    /// The layer ablated.
    public var layer: LayerChoice
    /// Group ids and their shape, broadcastable to the layer's `[N, …]`; nil: one group per unit.
    public var mask: (shape: [Int], ids: [Int32])?
    /// The value ablated units take (Captum's `layer_baselines`, a scalar; 0 by default).
    public var baseline: Float
    /// Ablated copies per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    public var progress: AttributionProgress?

    /// Ablation of `layer`'s groups (`mask`) to `baseline`, `perturbationsPerEval` copies per pass.
    public init(layer: LayerChoice, mask: (shape: [Int], ids: [Int32])? = nil, baseline: Float = 0,
                perturbationsPerEval: Int = 1, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.mask = mask
        self.baseline = baseline
        self.perturbationsPerEval = perturbationsPerEval
        self.progress = progress
    }

    /// Passes: the layer's forward, then one per `perturbationsPerEval` groups; without a mask
    /// the group count is only known from the layer, so the total is an estimate of 1 + groups.
    public func progressTotal(inputShape: [Int]) -> Int {
        let groups = mask.map { Set($0.ids).count } ?? 1
        return 1 + (groups + max(1, perturbationsPerEval) - 1) / max(1, perturbationsPerEval)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "layer-feature-ablation"), layer: layer,
                                               batchSize: inputs.shape[0])
        let total = progressTotal(inputShape: inputs.shape)
        let values = try evaluator.evaluate(inputs, targets: targets, gradients: false).values
        progress?(1, total)
        let rows = inputs.shape[0], rowSize = values.count / rows
        let ids = try groupIDs(layerShape: values.shape)
        let groups = Array(Set(ids)).sorted()
        let original = try GradientEvaluator(model: model, batchSize: rows).scores(inputs, targets: targets)
        var attributions = [Float](repeating: 0, count: values.count)
        let perPass = max(1, perturbationsPerEval)
        var first = 0, passes = 1
        while first < groups.count {
            let chunk = Array(groups[first..<min(groups.count, first + perPass)])
            // Copies group-major: (group 0: rows 0…N−1), (group 1: …), as Captum batches them.
            var replaced = [Float](repeating: 0, count: chunk.count * values.count)
            values.withUnsafeBufferPointer { v in
                for (copy, group) in chunk.enumerated() {
                    for i in 0..<values.count { replaced[copy * values.count + i] = ids[i] == group ? baseline : v[i] }
                }
            }
            let scores = try evaluator.scores(inputs.repeatingBlocks(chunk.count),
                                              targets: Array(Array(repeating: targets, count: chunk.count).joined()),
                                              replacements: Tensor(shape: [chunk.count * rows] + values.shape.dropFirst(),
                                                                   values: replaced))
            for (copy, group) in chunk.enumerated() {
                for row in 0..<rows {
                    let drop = original[row] - scores[copy * rows + row]
                    for i in 0..<rowSize where ids[row * rowSize + i] == group { attributions[row * rowSize + i] = drop }
                }
            }
            passes += 1
            progress?(passes, total)
            first += perPass
        }
        return Attribution(values: Tensor(shape: values.shape, values: attributions))
    }

    /// Each layer element's group id: the mask broadcast to `layerShape`, or the element's own index.
    private func groupIDs(layerShape: [Int]) throws(ElucidateError) -> [Int32] {
        let count = layerShape.reduce(1, *)
        guard let mask else {
            let rowSize = count / layerShape[0]
            return (0..<count).map { Int32($0 % rowSize) }
        }
        guard mask.shape.count == layerShape.count,
              zip(mask.shape, layerShape).allSatisfy({ $0 == 1 || $0 == $1 }) else {
            throw ElucidateError(.invalidArgument,
                                 "the layer mask's shape \(mask.shape) does not broadcast to the shape \(layerShape) of layer '\(layer.name)'")
        }
        var ids = [Int32](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: layerShape.count)
        for flat in 0..<count {
            var source = 0
            for axis in 0..<layerShape.count { source = source * mask.shape[axis] + (mask.shape[axis] == 1 ? 0 : index[axis]) }
            ids[flat] = mask.ids[source]
            var axis = layerShape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < layerShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return ids
    }
}

extension Tensor {
    /// The whole batch repeated `times` times, block after block (a, b, a, b).
    func repeatingBlocks(_ times: Int) -> Tensor {
        times == 1 ? self : Tensor.concatenatingRows(Array(repeating: self, count: times))
    }
}
