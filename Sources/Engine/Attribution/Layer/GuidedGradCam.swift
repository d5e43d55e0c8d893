import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Guided Grad-CAM, as Captum's `GuidedGradCam`: guided backpropagation `[N, C, H, W]` times
/// the layer's Grad-CAM map (with its ReLU) resized to the input's H, W — by `upsample`,
/// Captum's `interpolate_mode` ("nearest" by default) — broadcast over the channels.
///
/// Shape: the input's `[N, C, H, W]`.
public struct GuidedGradCam: AttributionMethod {
    /// The layer whose Grad-CAM map weights the guided gradients.
    public var layer: LayerChoice
    /// How the map is resized to the input (Captum's `interpolate_mode`, default nearest).
    public var upsample: LayerInterpolation
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Guided Grad-CAM of `layer`, `batchSize` inputs per pass.
    public init(layer: LayerChoice, upsample: LayerInterpolation = .nearest, batchSize: Int = 16,
                progress: AttributionProgress? = nil) {
        self.layer = layer
        self.upsample = upsample
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let half = passCount(rows: inputs.shape[0], batchSize: batchSize)
        let total = 2 * half
        // One progress over both halves: Grad-CAM's passes, then guided backpropagation's.
        let report = progress
        let camProgress: AttributionProgress = { done, _ in report?(done, total) }
        let guidedProgress: AttributionProgress = { done, _ in report?(half + done, total) }
        let cam = try LayerGradCam(layer: layer, reluAttributions: true, upsample: upsample, batchSize: batchSize,
                                   progress: camProgress)
            .attribute(model, inputs: inputs, targets: targets).values
        let guided = try ModifiedGradient(.guidedBackprop, batchSize: batchSize, progress: guidedProgress)
            .attribute(model, inputs: inputs, targets: targets).values
        let (n, c) = (inputs.shape[0], inputs.shape[1])
        let plane = inputs.count / (n * c)
        var values = [Float](repeating: 0, count: inputs.count)
        guided.withUnsafeBufferPointer { g in
            cam.withUnsafeBufferPointer { m in
                for row in 0..<n {
                    for channel in 0..<c {
                        let base = (row * c + channel) * plane
                        for i in 0..<plane { values[base + i] = g[base + i] * m[row * plane + i] }
                    }
                }
            }
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values))
    }

    /// Passes: Grad-CAM's and guided backpropagation's, ⌈N / batchSize⌉ each.
    public func progressTotal(inputShape: [Int]) -> Int {
        2 * passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
