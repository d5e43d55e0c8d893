import ElucidateAttribution
import ElucidateCore
import ElucidateModels

/// Captum's `captum.metrics.infidelity` (Yeh et al. 2019) for one input: with perturbations
/// I_s, the perturbed input x − I_s, and f the model's logit of the target (Captum's
/// `forward_func` being the model),
///
///     infidelity = (1/S) Σ_s (Σ attr·I_s − (f(x) − f(x − I_s)))²
///
/// and with `normalize`, Captum's rescaling of the attributions by the least-squares
/// β = Σ_s (Σ attr·I_s)(f(x) − f(x − I_s)) / Σ_s (Σ attr·I_s)² (β = 0 when the denominator is
/// 0, as Captum's `safe_div`), i.e. (1/S) Σ_s (β Σ attr·I_s − Δf_s)².
public struct Infidelity: Sendable {
    /// Where the perturbations come from.
    public enum Perturbations: Sendable {
        /// Given perturbations `[S, C, H, W]` (the same for every input).
        case given(Tensor)
        /// `samples` draws of Gaussian noise of standard deviation `stdev` per element, seeded
        /// (`SeededRandom`; the draws differ from torch's, the metric's definition does not).
        case gaussian(stdev: Float, samples: Int, seed: UInt64)
    }

    /// The perturbations I_s.
    public var perturbations: Perturbations
    /// Captum's `normalize`: rescale the attributions by the best β first.
    public var normalize: Bool
    /// Perturbed inputs per model call (at least 1).
    public var batchSize: Int

    /// Infidelity under `perturbations`, Captum's `normalize` off by default.
    public init(perturbations: Perturbations, normalize: Bool = false, batchSize: Int = 16) {
        self.perturbations = perturbations
        self.normalize = normalize
        self.batchSize = batchSize
    }

    /// The perturbations `[S, C, H, W]` for an input of row shape `rowShape` `[C, H, W]`.
    public func perturbationTensor(rowShape: [Int]) throws(ElucidateError) -> Tensor {
        switch perturbations {
        case .given(let tensor):
            return try GivenPerturbations.checked(tensor, rowShape: rowShape)
        case .gaussian(let stdev, let samples, let seed):
            try GivenPerturbations.checkDraws(samples: samples, spread: stdev, name: "noise-stdev", rowCount: rowShape.reduce(1, *))
            var random = SeededRandom(seed: seed)
            return random.addingNoise(to: Tensor(zeros: [samples] + rowShape), stdev: stdev)
        }
    }

    /// The infidelity of `attributions` (the input's shape `[1, C, H, W]`) for `input`
    /// `[1, C, H, W]` and class `target`.
    public func value(_ classifier: Classifier, input: Tensor, attributions: Tensor, target: Int) throws(ElucidateError) -> Double {
        guard batchSize >= 1 else { throw ElucidateError(.invalidArgument, "--batch-size must be at least 1") }
        guard input.rank == 4, input.shape[0] == 1 else {
            throw ElucidateError(.invalidArgument, "infidelity takes one input [1, C, H, W], got \(input.shape)")
        }
        guard attributions.count == input.count, Array(attributions.shape.suffix(3)) == Array(input.shape.suffix(3)) else {
            throw ElucidateError(.invalidArgument, "infidelity needs attributions of the input's shape \(input.shape), got \(attributions.shape)")
        }
        let rowShape = Array(input.shape.dropFirst())
        let noise = try perturbationTensor(rowShape: rowShape)
        let samples = noise.shape[0]
        let size = input.count
        let x = input.scalars, attribution = attributions.scalars, perturbation = noise.scalars
        let original = Double(try classifier.logits(input)[0, target])

        var projections: [Double] = []  // Σ attr·I_s
        var differences: [Double] = []  // f(x) − f(x − I_s)
        var start = 0
        while start < samples {
            let rows = min(batchSize, samples - start)
            var batch = [Float](repeating: 0, count: rows * size)
            for row in 0..<rows {
                let offset = (start + row) * size
                var projection = 0.0
                for i in 0..<size {
                    batch[row * size + i] = x[i] - perturbation[offset + i]
                    projection += Double(attribution[i]) * Double(perturbation[offset + i])
                }
                projections.append(projection)
            }
            let logits = try classifier.logits(Tensor(shape: [rows] + rowShape, values: batch))
            for row in 0..<rows { differences.append(original - Double(logits[row, target])) }
            start += rows
        }
        var beta = 1.0
        if normalize {
            let denominator = projections.reduce(0) { $0 + $1 * $1 }
            let numerator = zip(projections, differences).reduce(0) { $0 + $1.0 * $1.1 }
            beta = denominator == 0 ? 0 : numerator / denominator
        }
        let total = zip(projections, differences).reduce(0.0) { sum, pair in
            let error = beta * pair.0 - pair.1
            return sum + error * error
        }
        return total / Double(samples)
    }
}
