import ElucidateAttribution
import ElucidateCore

/// Captum's `captum.metrics.sensitivity_max` (Yeh et al. 2019) for one input: the method is
/// recomputed on S inputs x + δ_s with δ_s uniform in the L∞ ball of radius r, and the metric is
///
///     max_s ‖attr(x + δ_s) − attr(x)‖_F / ‖attr(x)‖_F
///
/// (Captum's default `norm_ord='fro'`; a zero ‖attr(x)‖ divides by 1, as Captum does).
public struct SensitivityMax: Sendable {
    /// Where the noise comes from.
    public enum Perturbations: Sendable {
        /// Given noise `[S, C, H, W]`: the perturbed inputs are x + δ_s.
        case given(Tensor)
        /// `samples` draws uniform in [−radius, radius] per element, seeded (`SeededRandom`;
        /// torch draws other numbers from the same distribution).
        case uniform(radius: Float, samples: Int, seed: UInt64)
    }

    /// The noise δ_s.
    public var perturbations: Perturbations
    /// Perturbed inputs per call of the method (at least 1).
    public var batchSize: Int

    /// Sensitivity under `perturbations` (Captum's defaults: radius 0.02, 10 samples).
    public init(perturbations: Perturbations, batchSize: Int = 10) {
        self.perturbations = perturbations
        self.batchSize = batchSize
    }

    /// The noise `[S, C, H, W]` for an input of row shape `rowShape` `[C, H, W]`.
    public func noise(rowShape: [Int]) throws(ElucidateError) -> Tensor {
        switch perturbations {
        case .given(let tensor):
            return try GivenPerturbations.checked(tensor, rowShape: rowShape)
        case .uniform(let radius, let samples, let seed):
            try GivenPerturbations.checkDraws(samples: samples, spread: radius, name: "radius", rowCount: rowShape.reduce(1, *))
            var random = SeededRandom(seed: seed)
            let count = samples * rowShape.reduce(1, *)
            let values = (0..<count).map { _ in Float((2 * random.nextUniform() - 1) * Double(radius)) }
            return Tensor(shape: [samples] + rowShape, values: values)
        }
    }

    /// The sensitivity of `explain` (a map of any shape for a batch `[S, C, H, W]`, one row per
    /// input row) at `input` `[1, C, H, W]`.
    public func value(input: Tensor, explain: (Tensor) throws(ElucidateError) -> Tensor) throws(ElucidateError) -> Double {
        guard batchSize >= 1 else { throw ElucidateError(.invalidArgument, "--batch-size must be at least 1") }
        guard input.rank == 4, input.shape[0] == 1 else {
            throw ElucidateError(.invalidArgument, "sensitivity-max takes one input [1, C, H, W], got \(input.shape)")
        }
        let rowShape = Array(input.shape.dropFirst())
        let deltas = try noise(rowShape: rowShape)
        let reference = try explain(input).scalars
        let referenceNorm = Self.norm(reference[...])
        let scale = referenceNorm == 0 ? 1 : referenceNorm
        let x = input.scalars, delta = deltas.scalars, size = input.count
        var worst = 0.0
        var start = 0
        while start < deltas.shape[0] {
            let rows = min(batchSize, deltas.shape[0] - start)
            var batch = [Float](repeating: 0, count: rows * size)
            for i in 0..<(rows * size) { batch[i] = x[i % size] + delta[start * size + i] }
            let maps = try explain(Tensor(shape: [rows] + rowShape, values: batch)).scalars
            guard maps.count == rows * reference.count else {
                throw ElucidateError(.internalFailure, "the method's map changed size under noise")
            }
            for row in 0..<rows {
                let offset = row * reference.count
                let difference = (0..<reference.count).map { maps[offset + $0] - reference[$0] }
                worst = max(worst, Self.norm(difference[...]) / scale)
            }
            start += rows
        }
        return worst
    }

    /// The Frobenius (L2) norm, accumulated in double precision.
    static func norm(_ values: ArraySlice<Float>) -> Double {
        values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }
}
