import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Layer DeepLIFT (Rescale rule), as Captum's `LayerDeepLift`: the layer's difference from
/// its value at the baseline times DeepLIFT's multipliers from the target logit down to the
/// layer, `(a(x) − a(x′)) · m`.
///
/// Shape: the layer's `[N, …]`. The convergence delta is Σ attributions − (F(x) − F(x′)),
/// which is near zero only for a layer every path to the output goes through.
public struct LayerDeepLift: BaselineAttributionMethod {
    /// The layer attributed to.
    public var layer: LayerChoice
    /// The reference input x′; zero by default.
    public var baseline: Baseline
    /// Inputs per pass (each pass also runs their baselines).
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Layer DeepLIFT of `layer` against `baseline`, `batchSize` inputs per pass.
    public init(layer: LayerChoice, baseline: Baseline = .zero, batchSize: Int = 8, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.baseline = baseline
        self.batchSize = batchSize
        self.progress = progress
    }

    /// Passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let layered = try self.layered(model, method: "layer-deeplift")
        let baselines = try baseline.expanded(like: inputs)
        let rows = inputs.shape[0], total = progressTotal(inputShape: inputs.shape)
        var parts: [Tensor] = []
        var start = 0
        while start < rows {
            let end = min(rows, start + max(1, batchSize))
            let n = end - start
            // As DeepLift: one batch [inputs; references], the Rescale rule pairing the halves.
            let graph = Graph(reluRule: .rescale)
            let x = graph.input(Tensor.concatenatingRows([inputs.rows(start..<end), baselines.rows(start..<end)]))
            let (logits, tapped) = try layered.logits(x, in: graph, tapping: layer.tap())
            let seed = GradientEvaluator<ResNet>.seed(logits: logits.value, targets: targets[start..<end])
            let multipliers = try graph.gradients(of: logits, seed: seed, for: [tapped])[0].rows(0..<n)
            let difference = tapped.value.rows(0..<n).zipMap(tapped.value.rows(n..<2 * n)) { $0 - $1 }
            parts.append(difference.multiplying(multipliers))
            progress?(parts.count, total)
            start = end
        }
        let attributions = parts.count == 1 ? parts[0] : Tensor.concatenatingRows(parts)
        let delta = try convergenceDelta(attributions, model: model, inputs: inputs, baselines: baselines, targets: targets,
                                         batchSize: batchSize)
        return Attribution(values: attributions, convergenceDelta: delta)
    }
}
