import ElucidateCore
import ElucidateModels
import ElucidateNN

/// The gradient-weighted class activation maps of pytorch-grad-cam 1.5.7 beyond Grad-CAM
/// (which is `LayerGradCam`): each is a weighting of a layer's activations `A` `[N, C, h, w]`
/// by the target logit's gradients `g` with respect to them, summed over channels.
public enum GradientCAMKind: String, Sendable, CaseIterable {
    /// Grad-CAM++ (`GradCAMPlusPlus`): `a = g² / (2g² + Σ_hw A · g³ + 1e-6)` (0 where g = 0),
    /// `w_c = Σ_hw max(g, 0) · a`, map `Σ_c w_c A_c`.
    case gradCAMPlusPlus = "grad-cam-plus-plus"
    /// XGrad-CAM (`XGradCAM`): `w_c = Σ_hw g · A / (Σ_hw A + 1e-7)`, map `Σ_c w_c A_c`.
    case xgradCAM = "xgrad-cam"
    /// HiResCAM (`HiResCAM`): the elementwise product summed over channels, `Σ_c g_c ⊙ A_c`.
    case hiResCAM = "hires-cam"
    /// LayerCAM (`LayerCAM`): `Σ_c max(g_c, 0) ⊙ A_c`.
    case layerCAM = "layer-cam"
}

/// A gradient CAM of pytorch-grad-cam (`GradientCAMKind`) on one layer. The attributions are
/// the RAW map `[N, 1, h, w]` at the layer's resolution, before pytorch-grad-cam's ReLU, min-max
/// scaling and resize (`CAMPostprocessing.final` applies those).
public struct GradientCAM: AttributionMethod {
    /// Which weighting.
    public var kind: GradientCAMKind
    /// The layer (a 4-D output `[N, C, h, w]`, usually `layer4`).
    public var layer: LayerChoice
    /// Inputs per forward/backward pass.
    public var batchSize: Int
    /// Called after each pass with (passes done, `progressTotal`).
    public var progress: AttributionProgress?

    /// The `kind` map of `layer`, `batchSize` inputs per pass.
    public init(_ kind: GradientCAMKind, layer: LayerChoice, batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.kind = kind
        self.layer = layer
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let evaluator = LayerGradientEvaluator(model: try layered(model, method: kind.rawValue), layer: layer,
                                               batchSize: batchSize)
        let total = progressTotal(inputShape: inputs.shape)
        let (values, gradients) = try evaluator.evaluate(inputs, targets: targets, passed: { progress?($0, total) })
        try CAMMaps.requireSpatial(values, method: kind.rawValue, layer: layer)
        return Attribution(values: Self.map(kind, activations: values, gradients: gradients))
    }

    /// The raw map `[N, 1, h, w]` of `kind` from activations and gradients `[N, C, h, w]`.
    public static func map(_ kind: GradientCAMKind, activations: Tensor, gradients: Tensor) -> Tensor {
        switch kind {
        case .hiResCAM, .layerCAM:
            let positive = kind == .layerCAM
            let weighted = gradients.zipMap(activations) { g, a in (positive ? max(g, 0) : g) * a }
            return CAMMaps.channelSum(weighted)
        case .gradCAMPlusPlus, .xgradCAM:
            return CAMMaps.weightedSum(activations, weights: weights(kind, activations: activations, gradients: gradients))
        }
    }

    /// The per-channel weights `[N, C]` of Grad-CAM++ and XGrad-CAM (pytorch-grad-cam's
    /// `get_cam_weights`, float32 as it computes them).
    public static func weights(_ kind: GradientCAMKind, activations: Tensor, gradients: Tensor) -> Tensor {
        let shape = activations.shape
        let (n, c) = (shape[0], shape[1])
        let positions = shape.dropFirst(2).reduce(1, *)
        var out = [Float](repeating: 0, count: n * c)
        activations.withUnsafeBufferPointer { a in
            gradients.withUnsafeBufferPointer { g in
                for nc in 0..<(n * c) {
                    let base = nc * positions
                    var sumA: Float = 0
                    for p in 0..<positions { sumA += a[base + p] }
                    var weight: Float = 0
                    for p in 0..<positions {
                        let gp = g[base + p]
                        if kind == .xgradCAM {
                            weight += gp * a[base + p] / (sumA + 1e-7)
                        } else if gp != 0 {
                            let g2 = gp * gp, g3 = g2 * gp
                            let alpha = g2 / (2 * g2 + sumA * g3 + 1e-6)
                            weight += max(gp, 0) * alpha
                        }
                    }
                    out[nc] = weight
                }
            }
        }
        return Tensor(shape: [n, c], values: out)
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}

/// Sums shared by the CAM methods.
enum CAMMaps {
    /// Refuses a layer whose output is not `[N, C, h, w]` (a CAM needs positions).
    static func requireSpatial(_ values: Tensor, method: String, layer: LayerChoice) throws(ElucidateError) {
        if values.rank != 4 {
            throw ElucidateError(.invalidArgument,
                                 "\(method) needs a layer with a 4-D output (N,C,h,w); '\(layer.name)' gives \(values.shape)")
        }
    }

    /// `[N, C, h, w]` summed over channels: `[N, 1, h, w]`.
    static func channelSum(_ x: Tensor) -> Tensor {
        let shape = x.shape
        let (n, c) = (shape[0], shape[1])
        let positions = shape.dropFirst(2).reduce(1, *)
        var out = [Float](repeating: 0, count: n * positions)
        x.withUnsafeBufferPointer { v in
            for row in 0..<n {
                for channel in 0..<c {
                    let base = (row * c + channel) * positions
                    for p in 0..<positions { out[row * positions + p] += v[base + p] }
                }
            }
        }
        return Tensor(shape: [n, 1] + shape.dropFirst(2), values: out)
    }

    /// `Σ_c weights[n, c] · activations[n, c]`: `[N, 1, h, w]`.
    static func weightedSum(_ activations: Tensor, weights: Tensor) -> Tensor {
        let shape = activations.shape
        let (n, c) = (shape[0], shape[1])
        let positions = shape.dropFirst(2).reduce(1, *)
        var out = [Float](repeating: 0, count: n * positions)
        activations.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { w in
                for row in 0..<n {
                    for channel in 0..<c {
                        let weight = w[row * c + channel]
                        let base = (row * c + channel) * positions
                        for p in 0..<positions { out[row * positions + p] += weight * a[base + p] }
                    }
                }
            }
        }
        return Tensor(shape: [n, 1] + shape.dropFirst(2), values: out)
    }
}
