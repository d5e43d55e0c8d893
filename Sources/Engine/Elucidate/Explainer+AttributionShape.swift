import Foundation

// The shape of a method's attributions before running it, so that a caller (the C API's
// elu_attribution_shape and elu_explain_into) can allocate the buffer first. The input
// methods keep the input's shape; a layer method's shape comes from one forward pass of a
// single zero row through the model with the layer tapped, which is the only way to know
// it for any module path (a block's input, a downsample, fastai's names) without a second
// table of shapes that could drift from the network.

extension Explainer {
    /// The shape of the attributions `explain(method:options:inputs:)` returns for inputs of
    /// shape `inputShape` `[N, C, H, W]`, without running the method:
    ///
    /// - the input's shape for the input methods, `guided-grad-cam`, the neuron methods and `lrp`;
    /// - `[N, 1, h, w]` for `grad-cam` and the CAMs (`[N, 1, H, W]` for `grad-cam` with `upsample`);
    /// - the layer's output (or, with `layer-input`, input) shape with N rows for the other layer
    ///   methods, e.g. `[N, 256, 14, 14]` for `layer3` of a ResNet at 224×224, `[N, classes]` for `fc`.
    ///
    /// The options are checked as `explain` checks them (no file they name is read). A layer
    /// method costs one forward pass of one zero row.
    ///
    /// - Throws: `.invalidArgument` for an unknown method, option or layer, a bad value, an input
    ///   shape that is not `[N, C, H, W]` with the model's C, or a CAM on a layer without positions;
    ///   `.inputTooSmall` for an empty input or one the network cannot take.
    public func attributionShape(method: String, options: Options = Options(),
                                 inputShape: [Int]) throws(ElucidateError) -> [Int] {
        let plan = try ExplanationPlan(method: method, options: options)
        guard inputShape.count == 4 else {
            throw ElucidateError(.invalidArgument, "the input must be a batch [N, C, H, W], got \(inputShape)")
        }
        guard inputShape.allSatisfy({ $0 > 0 }) else {
            throw ElucidateError(.inputTooSmall, "the input \(inputShape) is empty")
        }
        guard inputShape[1] == classifier.network.inputChannels else {
            throw ElucidateError(.invalidArgument,
                                 "the input has \(inputShape[1]) channels, the model takes \(classifier.network.inputChannels)")
        }
        guard plan.method.isLayerMethod, let name = plan.recorded["layer"] else { return inputShape }
        let rows = inputShape[0]
        let tap = LayerTap(name, atInput: plan.recorded["layer-input"] == "true")
        let graph = Graph()
        let one = graph.input(Tensor(zeros: [1] + inputShape.dropFirst()), requiresGradient: false)
        let layerShape = [rows] + (try classifier.network.logits(one, in: graph, tapping: tap).layer.shape.dropFirst())
        if plan.method == .gradCAM {
            guard plan.recorded["upsample"] != nil else { return [rows, 1] + layerShape.dropFirst(2) }
            guard layerShape.count == 4 else {
                throw ElucidateError(.invalidArgument,
                                     "only a 4-D layer attribution [N, C, h, w] can be upsampled, got \([rows, 1] + layerShape.dropFirst(2))")
            }
            return [rows, 1, inputShape[2], inputShape[3]]
        }
        if plan.method.isCAM {
            guard layerShape.count == 4 else {
                throw ElucidateError(.invalidArgument,
                                     "\(method) needs a layer with a 4-D output (N,C,h,w); '\(name)' gives \(layerShape)")
            }
            return [rows, 1, layerShape[2], layerShape[3]]
        }
        return layerShape
    }
}
