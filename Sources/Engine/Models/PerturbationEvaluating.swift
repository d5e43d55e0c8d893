import ElucidateCore

/// One occlusion window position: the box [c0, c1) × [y0, y1) × [x0, x1) of an input row
/// `[C, H, W]` (cropped at the border) that is replaced by the baseline.
package struct OcclusionBox: Sendable, Equatable {
    package var c0: Int, c1: Int, y0: Int, y1: Int, x0: Int, x1: Int

    package init(c0: Int, c1: Int, y0: Int, y1: Int, x0: Int, x1: Int) {
        (self.c0, self.c1, self.y0, self.y1, self.x0, self.x1) = (c0, c1, y0, y1, x0, x1)
    }
}

/// A model that scores many perturbed copies of an input faster than one plain forward pass
/// each. The perturbation methods (ElucidateAttribution) ask a model for it with
/// `model as? any PerturbationEvaluating` and fall back to `logits` otherwise, so they never
/// need to know the concrete model types: `ResNet` adopts it, `Classifier` forwards to its
/// network.
package protocol PerturbationEvaluating: Sendable {
    /// Logits `[N, classes]` of a batch of copies: the same arithmetic as `logits`, arranged
    /// for many rows (one product per layer for the whole batch where planes are small).
    func batchedLogits(_ input: Tensor) throws(ElucidateError) -> Tensor

    /// The `target` logit of every row of `input`, the head evaluated in double from the
    /// float feature maps (occlusion's differences of nearly equal logits need it).
    func targetScores64(_ input: Tensor, target: Int) throws(ElucidateError) -> [Double]

    /// An incremental evaluator of copies of the one-row input `row` `[1, C, H, W]` that each
    /// differ from it inside one box. Exact: the same scores as `targetScores64` of the
    /// copies, up to float rounding. `fullThreshold` is the fraction of a layer's plane above
    /// which a region is recomputed whole.
    func incrementalEvaluator(row: Tensor, fullThreshold: Double) throws(ElucidateError) -> any IncrementalOcclusionEvaluator

    /// An evaluator of copies of the one-row input `row` `[1, C, H, W]` whose every channel is
    /// multiplied by a mask that is a linear combination of the planes of `basis` (Score-CAM's
    /// upsampled maps), or nil when it would be no faster than `copies` plain forward passes
    /// or would hold too much memory. Exact in arithmetic: the same logits as `logits` of the
    /// masked copies, up to float rounding.
    func maskedCopiesEvaluator(row: Tensor, basis: MaskBasis, copies: Int) throws(ElucidateError) -> (any MaskedCopiesEvaluator)?
}

/// The masks a `MaskedCopiesEvaluator` combines: `count` planes `[height, width]`, each made
/// when asked for, so that a large basis is never held whole.
package struct MaskBasis: Sendable {
    package let count: Int, height: Int, width: Int
    /// Plane `index` (0 ..< count), `height · width` values, row-major.
    package let plane: @Sendable (Int) -> [Float]

    package init(count: Int, height: Int, width: Int, plane: @escaping @Sendable (Int) -> [Float]) {
        (self.count, self.height, self.width, self.plane) = (count, height, width, plane)
    }
}

/// Scores copies of one input row multiplied by combinations of basis masks (see
/// `PerturbationEvaluating.maskedCopiesEvaluator`).
package protocol MaskedCopiesEvaluator {
    /// Logits `[K, classes]` of the copies `row ⊙ Σ_b coefficients[k, b] · basis[b]`, for
    /// `coefficients` `[K, B]`. A copy's logits do not depend on the other rows of the call.
    func logits(coefficients: Tensor) throws(ElucidateError) -> Tensor
}

/// Scores copies of one input row with boxes replaced by a baseline (see
/// `PerturbationEvaluating.incrementalEvaluator`).
package protocol IncrementalOcclusionEvaluator {
    /// The target's logit for the unoccluded row, by the same arithmetic as `scores`.
    func baseScore(target: Int) -> Double

    /// The target's logit for the row with each box replaced by `baseline` (one row), `perPass`
    /// copies at a time; `progress(done)` after each pass.
    func scores(boxes: [OcclusionBox], baseline: Tensor, target: Int, perPass: Int,
                progress: (Int) -> Void) throws(ElucidateError) -> [Double]
}

extension ResNet: PerturbationEvaluating {
    package func targetScores64(_ input: Tensor, target: Int) throws(ElucidateError) -> [Double] {
        head.targetLogits64(try batchedFeatureMap(input), target: target)
    }

    package func incrementalEvaluator(row: Tensor, fullThreshold: Double) throws(ElucidateError) -> any IncrementalOcclusionEvaluator {
        try IncrementalEvaluator(network: self, input: row, fullThreshold: fullThreshold)
    }

    package func maskedCopiesEvaluator(row: Tensor, basis: MaskBasis, copies: Int) throws(ElucidateError) -> (any MaskedCopiesEvaluator)? {
        try MaskedStemEvaluator(network: self, row: row, basis: basis, copies: copies)
    }
}

extension Classifier: PerturbationEvaluating {
    package func batchedLogits(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try network.batchedLogits(input)
    }

    package func targetScores64(_ input: Tensor, target: Int) throws(ElucidateError) -> [Double] {
        try network.targetScores64(input, target: target)
    }

    package func incrementalEvaluator(row: Tensor, fullThreshold: Double) throws(ElucidateError) -> any IncrementalOcclusionEvaluator {
        try network.incrementalEvaluator(row: row, fullThreshold: fullThreshold)
    }

    package func maskedCopiesEvaluator(row: Tensor, basis: MaskBasis, copies: Int) throws(ElucidateError) -> (any MaskedCopiesEvaluator)? {
        try network.maskedCopiesEvaluator(row: row, basis: basis, copies: copies)
    }
}
