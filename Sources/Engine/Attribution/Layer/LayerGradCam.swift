import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Grad-CAM (Selvaraju et al.), as Captum's `LayerGradCam`: each channel of a layer's output
/// weighted by the mean of the target logit's gradient over that channel's positions, summed
/// over channels: `Σ_c mean_hw(∂y/∂A_c) · A_c`, then a ReLU when `reluAttributions`.
///
/// Shape `[N, 1, h, w]` at the layer's resolution (`[N, 1]` for a 2-D layer such as `fc`),
/// or `[N, 1, H, W]` when `upsample` resizes it to the input's size (Captum's
/// `LayerAttribution.interpolate`).
public struct LayerGradCam: AttributionMethod {
    /// The layer attributed to (usually the last convolutional stage, `layer4`).
    public var layer: LayerChoice
    /// Apply a ReLU to the map (Captum's `relu_attributions`, default false).
    public var reluAttributions: Bool
    /// Resize the map to the input's H, W with this mode; nil keeps the layer's resolution.
    public var upsample: LayerInterpolation?
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// Grad-CAM of `layer`, `batchSize` inputs per pass.
    public init(layer: LayerChoice, reluAttributions: Bool = false, upsample: LayerInterpolation? = nil,
                batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.reluAttributions = reluAttributions
        self.upsample = upsample
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: "grad-cam"), layer: layer,
                                               batchSize: batchSize)
        let total = progressTotal(inputShape: inputs.shape)
        let (values, gradients) = try evaluator.evaluate(inputs, targets: targets, passed: { progress?($0, total) })
        var map = Self.map(activations: values, gradients: gradients, relu: reluAttributions)
        if let upsample { map = try upsample.resize(map, height: inputs.shape[2], width: inputs.shape[3]) }
        return Attribution(values: map)
    }

    /// Captum's formula on one layer's activations and gradients `[N, C, …]`: the gradients
    /// averaged over the positions (dims 2…; none for a 2-D layer), times the activations,
    /// summed over channels keeping the dimension: `[N, 1, …]`.
    static func map(activations: Tensor, gradients: Tensor, relu: Bool) -> Tensor {
        let shape = activations.shape
        let (n, c) = (shape[0], shape[1])
        let positions = shape.dropFirst(2).reduce(1, *)
        var out = [Float](repeating: 0, count: n * positions)
        activations.withUnsafeBufferPointer { a in
            gradients.withUnsafeBufferPointer { g in
                for row in 0..<n {
                    for channel in 0..<c {
                        let base = (row * c + channel) * positions
                        var sum: Float = 0
                        for p in 0..<positions { sum += g[base + p] }
                        let weight = sum / Float(positions)
                        for p in 0..<positions { out[row * positions + p] += weight * a[base + p] }
                    }
                }
            }
        }
        if relu { out = out.map { max($0, 0) } }
        return Tensor(shape: [n, 1] + shape.dropFirst(2), values: out)
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
