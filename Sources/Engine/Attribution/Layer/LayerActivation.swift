import ElucidateCore
import ElucidateModels
import ElucidateNN

/// A layer's activation itself, as Captum's `LayerActivation`: the output (or input) of the
/// named module for each input row, shape `[N, …]` of that layer (e.g. `[N, 512, 7, 7]` for
/// `layer4` of a ResNet34 at 224×224). The target is not used.
public struct LayerActivation: AttributionMethod {
    /// The layer read.
    public var layer: LayerChoice
    /// Inputs per forward pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// The activation of `layer`, `batchSize` inputs per pass.
    public init(layer: LayerChoice, batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let total = progressTotal(inputShape: inputs.shape)
        return Attribution(values: try layerValues(model, method: "layer-activation", layer: layer, inputs: inputs,
                                                   targets: targets, batchSize: batchSize, spatial: false,
                                                   passed: { progress?($0, total) }))
    }

    /// Forward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
