import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Occlusion (Zeiler & Fergus), as Captum's `Occlusion`: a window slides over the input in
/// steps of `stride`, each position is replaced by the baseline, and every element's
/// attribution is the average drop of the target's logit over the windows that covered it.
///
/// Windows start at multiples of the stride; along each dimension there are
/// ⌈(D − W) / S⌉ + 1 of them, the last one cropped at the border (Captum's arithmetic).
///
/// Precision: each attribution is a difference F(x) − F(x′) of two nearly equal logits, so
/// float32 rounding weighs on it far more than on the logits. For a ResNet the network runs in
/// float32 but the head (pooling and classifier) runs in double on its feature maps, for the
/// unoccluded input exactly as for the copies, and the differences are averaged in double:
/// what the window leaves unchanged cancels exactly, and the error is the float32 noise of the
/// activations the window changes (see `Tests/AttributionTests/OcclusionAccuracyTests.swift`).
/// With im2col convolutions that noise is Captum float32's (measured against a float64 run);
/// Winograd convolutions (`Runtime.winogradEnabled`, the default) make it about 3–4 times
/// larger, still far inside 1e-3 of Captum.
public struct Occlusion: BaselineAttributionMethod {
    /// How occluded copies are evaluated.
    public enum Evaluation: Sendable, Equatable {
        /// Every occluded copy runs through the whole network.
        case full
        /// For a model that evaluates incrementally (`PerturbationEvaluating`: a `ResNet`, or
        /// a `Classifier` around one): the unoccluded activations are computed once and each
        /// copy recomputes only the region its window can reach, layer by layer. Exact (same
        /// result as `.full` up to float rounding). Other models fall back to `.full`.
        case incremental

        /// Copies per pass unless asked: incremental copies share the unoccluded activations
        /// and hold little of their own, so many fit; whole copies hold every activation.
        public var defaultPerturbationsPerEval: Int { self == .incremental ? 64 : 16 }
    }

    /// Window extent (C, H, W) per input row.
    public var window: [Int]
    /// Step between windows (C, H, W).
    public var stride: [Int]
    /// What the window is replaced by; zero by default.
    public var baseline: Baseline
    /// Occluded copies per forward pass (Captum's `perturbations_per_eval`).
    public var perturbationsPerEval: Int
    /// Whether copies run through the whole network or only the region their window reaches.
    public var evaluation: Evaluation
    /// Called after each evaluated batch with (done, total) occluded copies: window positions
    /// of every input row.
    public var progress: AttributionProgress?
    /// Incremental evaluation recomputes a layer whole once the region covers this fraction
    /// of it: past half, one batched product over whole planes beats many cropped ones
    /// (measured on the seed's ResNet34 call: 0.5 about 10 % faster than 0.85).
    var fullThreshold = 0.5

    /// - Parameter perturbationsPerEval: copies per forward pass; nil picks
    ///   `evaluation.defaultPerturbationsPerEval`.
    public init(window: [Int], stride: [Int], baseline: Baseline = .zero, perturbationsPerEval: Int? = nil,
                evaluation: Evaluation = .incremental, progress: AttributionProgress? = nil) {
        self.window = window
        self.stride = stride
        self.baseline = baseline
        self.perturbationsPerEval = perturbationsPerEval ?? evaluation.defaultPerturbationsPerEval
        self.evaluation = evaluation
        self.progress = progress
    }

    /// Window starts along one dimension of extent `size`.
    static func starts(size: Int, window: Int, stride: Int) -> [Int] {
        let count = (size - window + stride - 1) / stride + 1
        return (0..<count).map { $0 * stride }
    }

    /// One window position: a box [c0, c1) × [y0, y1) × [x0, x1) in a row (cropped at the border).
    typealias Box = OcclusionBox

    /// The number of window positions on an input row `[C, H, W]`, or the error this
    /// geometry raises there (a window larger than the input, a stride larger than the window).
    public func windowCount(rowShape: [Int]) throws(ElucidateError) -> Int {
        guard rowShape.count == 3 else {
            throw ElucidateError(.invalidArgument, "occlusion needs input rows [C, H, W], got \(rowShape)")
        }
        return try boxes(rowShape: rowShape).count
    }

    /// Occluded copies scored: the window positions of every input row.
    public func progressTotal(inputShape: [Int]) throws(ElucidateError) -> Int {
        try windowCount(rowShape: Array(inputShape.dropFirst())) * (inputShape.first ?? 0)
    }

    func boxes(rowShape: [Int]) throws(ElucidateError) -> [Box] {
        guard window.count == 3, stride.count == 3 else {
            throw ElucidateError(.invalidArgument, "occlusion needs a window and a stride of 3 values (C,H,W)")
        }
        guard stride.allSatisfy({ $0 > 0 }), window.allSatisfy({ $0 > 0 }) else {
            throw ElucidateError(.invalidArgument, "occlusion window and stride must be positive")
        }
        for d in 0..<3 where window[d] > rowShape[d] {
            throw ElucidateError(.invalidArgument, "the occlusion window \(window) exceeds the input \(rowShape)")
        }
        // A stride past the window leaves elements no window covers (Captum divides their
        // zero sums by zero counts) and can start windows beyond the border.
        for d in 0..<3 where stride[d] > window[d] {
            throw ElucidateError(.invalidArgument, "the occlusion stride \(stride) is larger than the window \(window) "
                                 + "along \(["C", "H", "W"][d]): some elements would be covered by no window")
        }
        let cs = Self.starts(size: rowShape[0], window: window[0], stride: stride[0])
        let ys = Self.starts(size: rowShape[1], window: window[1], stride: stride[1])
        let xs = Self.starts(size: rowShape[2], window: window[2], stride: stride[2])
        var result: [Box] = []
        result.reserveCapacity(cs.count * ys.count * xs.count)
        for c in cs {
            for y in ys {
                for x in xs {
                    result.append(Box(c0: c, c1: min(rowShape[0], c + window[0]), y0: y, y1: min(rowShape[1], y + window[1]),
                                      x0: x, x1: min(rowShape[2], x + window[2])))
                }
            }
        }
        return result
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard perturbationsPerEval >= 1 else {
            throw ElucidateError(.invalidArgument, "perturbations per eval must be at least 1")
        }
        let baselines = try baseline.expanded(like: inputs)
        let rowShape = Array(inputs.shape.dropFirst())
        let (channels, height, width) = (rowShape[0], rowShape[1], rowShape[2])
        let rowSize = channels * height * width
        let boxes = try self.boxes(rowShape: rowShape)
        let rows = inputs.shape[0]
        try PassMemory.require(rows: min(boxes.count, perturbationsPerEval), rowShape: rowShape, model: model,
                               option: "number of perturbations per pass (--perturbations-per-eval)", recorded: false)
        var values = [Float](repeating: 0, count: inputs.count)
        // Models that know faster ways to score copies (a ResNet, a Classifier) say so through
        // `PerturbationEvaluating`; others run every copy through `logits`.
        let network = model as? any PerturbationEvaluating
        let incremental = evaluation == .incremental && network != nil
        let batcher = PerturbationBatcher(model: model, perPass: perturbationsPerEval)
        let total = boxes.count * rows
        func fill(_ row: Int) -> (Int, UnsafeMutablePointer<Float>) -> Void {
            let input = inputs.storage.pointer + row * rowSize
            let base = baselines.storage.pointer + row * rowSize
            return { index, out in
                out.update(from: input, count: rowSize)
                let box = boxes[index]
                for c in box.c0..<box.c1 {
                    for y in box.y0..<box.y1 {
                        let offset = (c * height + y) * width
                        (out + offset + box.x0).update(from: base + offset + box.x0, count: box.x1 - box.x0)
                    }
                }
            }
        }
        // Scores of the unoccluded row and of its occluded copies. For a ResNet the head runs
        // in double on the float feature maps (`PerturbationEvaluating.targetScores64`), for the row as
        // for its copies, so nothing but the network's float feature maps separates F(x) from
        // F(x′): what the window leaves unchanged cancels exactly, instead of the head's float
        // rounding (which also differs between a batch of one and a larger one) staying in
        // every difference.
        let initialScores = network == nil ? try batcher.initialScores(inputs, targets: targets).map(Double.init) : []
        for row in 0..<rows {
            let initial: Double
            let scores: [Double]
            let passed: (Int) -> Void = { done in progress?(row * boxes.count + done, total) }
            if incremental, let network {
                let evaluator = try network.incrementalEvaluator(row: inputs.rows(row..<(row + 1)),
                                                                 fullThreshold: fullThreshold)
                initial = evaluator.baseScore(target: targets[row])
                scores = try evaluator.scores(boxes: boxes, baseline: baselines.rows(row..<(row + 1)), target: targets[row],
                                              perPass: perturbationsPerEval, progress: passed)
            } else if let network {
                initial = try network.targetScores64(inputs.rows(row..<(row + 1)), target: targets[row])[0]
                scores = try Self.scores(network, count: boxes.count, rowShape: rowShape, target: targets[row],
                                         perPass: perturbationsPerEval, passed: passed, fill: fill(row))
            } else {
                initial = initialScores[row]
                scores = try batcher.scores(count: boxes.count, rowShape: rowShape, target: targets[row], passed: passed,
                                            fill: fill(row)).map(Double.init)
            }
            // Captum: Σ (initial − occluded) · mask / Σ mask; here in double, rounded once.
            var sums = [Double](repeating: 0, count: rowSize)
            var counts = [Int](repeating: 0, count: rowSize)
            for (box, score) in zip(boxes, scores) {
                let difference = initial - score
                for c in box.c0..<box.c1 {
                    for y in box.y0..<box.y1 {
                        let offset = (c * height + y) * width
                        for x in box.x0..<box.x1 {
                            sums[offset + x] += difference
                            counts[offset + x] += 1
                        }
                    }
                }
            }
            for i in 0..<rowSize { values[row * rowSize + i] = counts[i] > 0 ? Float(sums[i] / Double(counts[i])) : 0 }
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: values),
                           details: ["windows": String(boxes.count), "evaluation": incremental ? "incremental" : "full"])
    }

    /// The target's logit (head in double) for `count` copies of a row made by `fill`, through
    /// the whole network, `perPass` copies per batch.
    static func scores(_ network: any PerturbationEvaluating, count: Int, rowShape: [Int], target: Int, perPass: Int, passed: (Int) -> Void,
                       fill: (Int, UnsafeMutablePointer<Float>) -> Void) throws(ElucidateError) -> [Double] {
        let rowSize = rowShape.reduce(1, *)
        var result: [Double] = []
        result.reserveCapacity(count)
        var start = 0
        while start < count {
            let end = min(count, start + max(1, perPass))
            var batch = Tensor(uninitialized: [end - start] + rowShape)
            batch.withUnsafeMutableBufferPointer { out in
                for index in start..<end { fill(index, out.baseAddress! + (index - start) * rowSize) }
            }
            result += try network.targetScores64(batch, target: target)
            passed(end)
            start = end
        }
        return result
    }
}
