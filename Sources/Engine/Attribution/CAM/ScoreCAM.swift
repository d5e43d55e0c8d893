import CKernels
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
/// One forward pass per channel with a distinct map (channels with equal maps share one pass),
/// `batchSize` masked copies per pass (pytorch-grad-cam's `batch_size`, 16 when not set). The
/// mask is on the input, so no activation below the layer can be reused as it is; but the
/// stem's convolution is linear and every mask is a combination of the same h·w bilinear
/// tents, so a ResNet computes the stem's response to each tent once and sums them per copy
/// (`PerturbationEvaluating.maskedCopiesEvaluator`).
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
        let activations = try layerValues(model, method: "score-cam", layer: layer, inputs: inputs, targets: targets,
                                          batchSize: batchSize, spatial: true)
        let weights = try Self.weights(model, inputs: inputs, activations: activations, targets: targets,
                                       batchSize: max(1, batchSize), progress: progress)
        return Attribution(values: CAMMaps.weightedSum(activations, weights: weights))
    }

    /// The softmax of the masked copies' target logits `[N, C]`.
    ///
    /// Channels whose activation maps are bit-for-bit equal make equal masks, so equal masked
    /// inputs and equal scores: only the first of each such group runs through the network
    /// and the others take its score. That is exact, and it matters on trained networks,
    /// whose late layers have many channels that are zero everywhere for a given image.
    static func weights(_ model: some AttributionModel, inputs: Tensor, activations: Tensor, targets: [Int],
                        batchSize: Int, progress: AttributionProgress?) throws(ElucidateError) -> Tensor {
        let (n, c) = (activations.shape[0], activations.shape[1])
        let mapSize = activations.shape[2] * activations.shape[3]
        let groups = activations.withUnsafeBufferPointer { a in
            (0..<n).map { row in distinctMaps(a, row: row, channels: c, mapSize: mapSize) }
        }
        let total = groups.reduce(0) { $0 + ($1.representatives.count + batchSize - 1) / batchSize }
        let largest = groups.map(\.representatives.count).max() ?? 0
        try PassMemory.require(rows: min(largest, batchSize), rowShape: Array(inputs.shape.dropFirst()), model: model,
                               option: "batch size (--batch-size)", recorded: false)
        // A ResNet sums its stem's responses to the h·w tent masks instead of convolving each
        // copy (`MaskedCopiesEvaluator`), where that costs less.
        let network = model as? any PerturbationEvaluating
        let basis = network != nil ? tentBasis(activations, toHeight: inputs.shape[2], toWidth: inputs.shape[3]) : nil
        var passes = 0
        var weights = [Float]()
        weights.reserveCapacity(n * c)
        for row in 0..<n {
            let image = inputs.rows(row..<(row + 1))
            let representatives = groups[row].representatives
            var evaluator: (any MaskedCopiesEvaluator)?
            if let network, let basis {
                evaluator = try network.maskedCopiesEvaluator(row: image, basis: basis, copies: representatives.count)
            }
            var distinctScores = [Float]()
            distinctScores.reserveCapacity(representatives.count)
            var start = 0
            while start < representatives.count {
                let end = min(representatives.count, start + batchSize)
                let selected = Array(representatives[start..<end])
                let logits = if let evaluator {
                    try evaluator.logits(coefficients: tentCoefficients(activations, row: row, channels: selected,
                                                                        toHeight: inputs.shape[2], toWidth: inputs.shape[3]))
                } else {
                    try model.logits(maskedCopies(of: image, activations: activations, row: row, channels: selected))
                }
                let classes = logits.shape[1]
                logits.withUnsafeBufferPointer { l in
                    for i in 0..<(end - start) { distinctScores.append(l[i * classes + targets[row]]) }
                }
                passes += 1
                progress?(passes, total)
                start = end
            }
            let scores = groups[row].group.map { distinctScores[$0] }
            let top = scores.max() ?? 0
            let exps = scores.map { Foundation.exp(Double($0 - top)) }
            let sum = exps.reduce(0, +)
            weights += exps.map { Float($0 / sum) }
        }
        return Tensor(shape: [n, c], values: weights)
    }

    /// The channels of row `row` of `activations` with distinct maps (bit patterns), in
    /// channel order, and for every channel the index of its map among those.
    private static func distinctMaps(_ a: UnsafeBufferPointer<Float>, row: Int, channels: Int,
                                     mapSize: Int) -> (representatives: [Int], group: [Int]) {
        var seen: [[UInt32]: Int] = [:]
        var representatives: [Int] = []
        var group: [Int] = []
        group.reserveCapacity(channels)
        for channel in 0..<channels {
            let base = (row * channels + channel) * mapSize
            let key = (base..<(base + mapSize)).map { a[$0].bitPattern }
            if let index = seen[key] {
                group.append(index)
            } else {
                seen[key] = representatives.count
                group.append(representatives.count)
                representatives.append(channel)
            }
        }
        return (representatives, group)
    }

    /// `image` `[1, C, H, W]` masked by each of `channels`' maps of row `row`: the map upsampled
    /// to H × W (align-corners bilinear) and min-max normalised; `[channels.count, C, H, W]`.
    private static func maskedCopies(of image: Tensor, activations: Tensor, row: Int, channels selected: [Int]) -> Tensor {
        let (c, h, w) = (activations.shape[1], activations.shape[2], activations.shape[3])
        let (channels, height, width) = (image.shape[1], image.shape[2], image.shape[3])
        let plane = height * width
        let batch = Tensor(uninitialized: [selected.count, channels, height, width])
        let (a, x, out) = (activations.storage.pointer, image.storage.pointer, batch.storage.pointer)
        // The copies are independent, and one per forward pass of 32 is serial work the
        // network's threads would otherwise wait on: split them over the threads.
        checkKernel(Runtime.parallel(maxShares: selected.count, elements: selected.count * channels * plane) { ith, nth in
            var mask = [Float](repeating: 0, count: plane)
            for copy in (selected.count * Int(ith) / Int(nth))..<(selected.count * Int(ith + 1) / Int(nth)) {
                let base = (row * c + selected[copy]) * h * w
                let (low, scale) = normalisation(UnsafeBufferPointer(start: a + base, count: h * w), height: h, width: w,
                                                 toHeight: height, toWidth: width, mask: &mask)
                let offset = copy * channels * plane
                for k in 0..<channels {
                    for i in 0..<plane {
                        out[offset + k * plane + i] = x[k * plane + i] * ((mask[i] - low) / scale)
                    }
                }
            }
            return EK_OK
        }, "score-cam masked copies")
        return batch
    }

    /// The mask of one map: `mask` is set to its upsampling to H × W (align-corners bilinear),
    /// and the mask is `(mask − low) / scale` (pytorch-grad-cam's min-max normalisation).
    private static func normalisation(_ map: UnsafeBufferPointer<Float>, height h: Int, width w: Int, toHeight: Int,
                                      toWidth: Int, mask: inout [Float]) -> (low: Float, scale: Float) {
        CAMPostprocessing.resizeAlignCorners(map, height: h, width: w, toHeight: toHeight, toWidth: toWidth, into: &mask)
        let low = mask.min() ?? 0, high = mask.max() ?? 0
        return (low, high - low + 1e-8)
    }

    /// The h·w tent masks of align-corners bilinear upsampling from the maps' h × w to H × W:
    /// plane `i·w + j` is the upsampling of the map that is 1 at (i, j) and 0 elsewhere, so a
    /// map's upsampling is `Σ_ij map[i, j] · tent_ij`, and the tents sum to one.
    private static func tentBasis(_ activations: Tensor, toHeight: Int, toWidth: Int) -> MaskBasis {
        let (h, w) = (activations.shape[2], activations.shape[3])
        return MaskBasis(count: h * w, height: toHeight, width: toWidth) { index in
            var unit = [Float](repeating: 0, count: h * w)
            unit[index] = 1
            var mask = [Float](repeating: 0, count: toHeight * toWidth)
            unit.withUnsafeBufferPointer {
                CAMPostprocessing.resizeAlignCorners($0, height: h, width: w, toHeight: toHeight, toWidth: toWidth, into: &mask)
            }
            return mask
        }
    }

    /// Each selected channel's normalised mask as coefficients of the tents `[channels, h·w]`:
    /// `(U − low) / scale = Σ_ij ((map[i, j] − low) / scale) · tent_ij`, because the tents sum to one.
    private static func tentCoefficients(_ activations: Tensor, row: Int, channels selected: [Int], toHeight: Int,
                                         toWidth: Int) -> Tensor {
        let (c, h, w) = (activations.shape[1], activations.shape[2], activations.shape[3])
        var coefficients = [Float]()
        coefficients.reserveCapacity(selected.count * h * w)
        var mask = [Float](repeating: 0, count: toHeight * toWidth)
        activations.withUnsafeBufferPointer { a in
            for channel in selected {
                let map = UnsafeBufferPointer(rebasing: a[((row * c + channel) * h * w)..<((row * c + channel + 1) * h * w)])
                let (low, scale) = normalisation(map, height: h, width: w, toHeight: toHeight, toWidth: toWidth, mask: &mask)
                coefficients += map.map { ($0 - low) / scale }
            }
        }
        return Tensor(shape: [selected.count, h * w], values: coefficients)
    }

    /// Forward passes, given the layer's channels are unknown before the model runs: one per
    /// input (the activations) plus an estimate; the progress callback reports the real total.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
