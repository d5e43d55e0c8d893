import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Ablation-CAM (pytorch-grad-cam's `AblationCAM`, all channels ablated): no gradients. The
/// layer's output `A` `[N, C, h, w]` is replaced by a copy with channel c ablated, the target
/// logit of that is `s_c`, and with `s` the unablated logit the weight is `w_c = (s − s_c) / s`;
/// the raw map is `Σ_c w_c A_c` `[N, 1, h, w]`.
///
/// The ablation value is pytorch-grad-cam's: 0 when the minimum of the batch of activations is
/// 0 (as after a ReLU), otherwise that minimum − 1e7, the minimum being re-read after each copy
/// of the batch is ablated (as its `AblationLayer` does). `batchSize` ablated copies per pass
/// (pytorch-grad-cam's default 32). On a ResNet stage or block output only the layers above
/// it run for the ablated copies (`ResNet.logits(resumingAfter:output:)`); elsewhere the whole
/// network runs with the layer replaced.
public struct AblationCAM: AttributionMethod {
    /// The layer (a 4-D output `[N, C, h, w]`).
    public var layer: LayerChoice
    /// Ablated copies per forward pass.
    public var batchSize: Int
    /// Called after each pass with (passes done, `progressTotal`).
    public var progress: AttributionProgress?

    /// Ablation-CAM of `layer`, `batchSize` ablated copies per forward pass.
    public init(layer: LayerChoice, batchSize: Int = 32, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let size = max(1, batchSize)
        let activations = try layerValues(model, method: "ablation-cam", layer: layer, inputs: inputs, targets: targets,
                                          batchSize: size, spatial: true)
        let original = try model.logits(inputs)
        let (n, c) = (activations.shape[0], activations.shape[1])
        let plane = activations.shape[2] * activations.shape[3]
        let total = n * ((c + size - 1) / size)
        try PassMemory.require(rows: min(c, size), rowShape: Array(inputs.shape.dropFirst()), model: model,
                               option: "batch size (--batch-size)", recorded: false)
        var passes = 0
        var weights = [Float]()
        for row in 0..<n {
            let image = activations.rows(row..<(row + 1))
            let values = image.scalars
            let score = original.scalars[row * original.shape[1] + targets[row]]
            var start = 0
            while start < c {
                let end = min(c, start + size)
                var low = values.min() ?? 0
                var copies = [Float]()
                copies.reserveCapacity((end - start) * values.count)
                for channel in start..<end {
                    let ablation: Float = low == 0 ? 0 : low - 1e7
                    low = min(low, ablation)
                    var copy = values
                    for i in (channel * plane)..<((channel + 1) * plane) { copy[i] = ablation }
                    copies += copy
                }
                let replacements = Tensor(shape: [end - start] + image.shape.dropFirst(), values: copies)
                let scores: [Float]
                if !layer.atInput, let resumed = try Self.resumed(model, layer: layer.name, output: replacements) {
                    // Only the layers above the ablated one run (exact: the layers below see the
                    // same input as in the unablated pass).
                    let (classes, logits) = (resumed.shape[1], resumed.scalars)
                    scores = (0..<(end - start)).map { logits[$0 * classes + targets[row]] }
                } else {
                    let evaluator = LayerGradientEvaluator(model: try layered(model, method: "ablation-cam"), layer: layer,
                                                           batchSize: size)
                    scores = try evaluator.scores(inputs.rows(row..<(row + 1)).repeatingRows(end - start),
                                                  targets: Array(repeating: targets[row], count: end - start),
                                                  replacements: replacements)
                }
                weights += scores.map { (score - $0) / score }
                passes += 1
                progress?(passes, total)
                start = end
            }
        }
        return Attribution(values: CAMMaps.weightedSum(activations, weights: Tensor(shape: [n, c], values: weights)))
    }

    /// The logits from the layer's `output` when the model can resume its forward pass there
    /// (a ResNet's stage or block output), else nil.
    static func resumed(_ model: some AttributionModel, layer: String, output: Tensor) throws(ElucidateError) -> Tensor? {
        if let network = model as? ResNet { return try network.logits(resumingAfter: layer, output: output) }
        if let classifier = model as? Classifier { return try classifier.network.logits(resumingAfter: layer, output: output) }
        return nil
    }

    /// Forward passes before the layer's channels are known: ⌈N / batchSize⌉ (the progress
    /// callback reports the real total, N · ⌈C / batchSize⌉).
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
