import ElucidateCore
import Foundation
import ElucidateModels
import ElucidateNN

/// Score-CAM (pytorch-grad-cam's `ScoreCAM`): no gradients. Each channel c of the layer's
/// activations `A` `[N, C, h, w]` is upsampled to the input's H × W (bilinear with
/// `align_corners=True`, PyTorch's `UpsamplingBilinear2d`), min-max normalised per channel
/// (`(U − min) / (max − min + 1e-8)`), and masks the input; the target logit of each masked
/// copy is its score, `w = softmax_c(score)`, and the raw map is `Σ_c w_c A_c` `[N, 1, h, w]`.
///
/// C full forward passes per input (the mask is on the input, so nothing below the layer can
/// be reused), `batchSize` masked copies per pass (pytorch-grad-cam's `batch_size`, 16 when
/// not set).
public struct ScoreCAM: AttributionMethod {
    /// The layer (a 4-D output `[N, C, h, w]`).
    public var layer: LayerChoice
    /// Masked copies per forward pass.
    public var batchSize: Int
    /// Called after each pass with (passes done, `progressTotal`).
    public var progress: AttributionProgress?

    /// Score-CAM of `layer`, `batchSize` masked copies per forward pass.
    public init(layer: LayerChoice, batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "score-cam"), layer: layer,
                                               batchSize: max(1, batchSize))
        let activations = try evaluator.evaluate(inputs, targets: targets, gradients: false).values
        try CAMMaps.requireSpatial(activations, method: "score-cam", layer: layer)
        let weights = try Self.weights(model, inputs: inputs, activations: activations, targets: targets,
                                       batchSize: max(1, batchSize), progress: progress)
        return Attribution(values: CAMMaps.weightedSum(activations, weights: weights))
    }

    /// The softmax of the masked copies' target logits `[N, C]`.
    static func weights(_ model: some AttributionModel, inputs: Tensor, activations: Tensor, targets: [Int],
                        batchSize: Int, progress: AttributionProgress?) throws(ElucidateError) -> Tensor {
        let (n, c, h, w) = (activations.shape[0], activations.shape[1], activations.shape[2], activations.shape[3])
        let (channels, height, width) = (inputs.shape[1], inputs.shape[2], inputs.shape[3])
        let plane = height * width
        let total = n * ((c + batchSize - 1) / batchSize)
        var passes = 0
        var weights = [Float]()
        var mask = [Float](repeating: 0, count: plane)
        for row in 0..<n {
            let image = inputs.rows(row..<(row + 1)).scalars
            var scores = [Float]()
            var start = 0
            while start < c {
                let end = min(c, start + batchSize)
                var batch = Tensor(zeros: [end - start, channels, height, width])
                activations.withUnsafeBufferPointer { a in
                    batch.withUnsafeMutableBufferPointer { out in
                        for channel in start..<end {
                            let base = (row * c + channel) * h * w
                            CAMPostprocessing.resizeAlignCorners(UnsafeBufferPointer(rebasing: a[base..<(base + h * w)]),
                                                                 height: h, width: w, toHeight: height, toWidth: width,
                                                                 into: &mask)
                            let low = mask.min() ?? 0, high = mask.max() ?? 0
                            let scale = high - low + 1e-8
                            let offset = (channel - start) * channels * plane
                            for k in 0..<channels {
                                for i in 0..<plane {
                                    out[offset + k * plane + i] = image[k * plane + i] * ((mask[i] - low) / scale)
                                }
                            }
                        }
                    }
                }
                let logits = try model.logits(batch)
                let classes = logits.shape[1]
                logits.withUnsafeBufferPointer { l in
                    for i in 0..<(end - start) { scores.append(l[i * classes + targets[row]]) }
                }
                passes += 1
                progress?(passes, total)
                start = end
            }
            let top = scores.max() ?? 0
            let exps = scores.map { Foundation.exp(Double($0 - top)) }
            let sum = exps.reduce(0, +)
            weights += exps.map { Float($0 / sum) }
        }
        return Tensor(shape: [n, c], values: weights)
    }

    /// Forward passes, given the layer's channels are unknown before the model runs: one per
    /// input (the activations) plus an estimate; the progress callback reports the real total.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
