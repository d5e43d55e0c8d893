import ElucidateAttribution
import ElucidateCore

/// Checks shared by the metrics that perturb an input (infidelity, sensitivity-max).
enum GivenPerturbations {
    /// `tensor` if it is `[S, C, H, W]` (S ≥ 1) for inputs of row shape `rowShape` `[C, H, W]`.
    static func checked(_ tensor: Tensor, rowShape: [Int]) throws(ElucidateError) -> Tensor {
        guard tensor.rank == 4, Array(tensor.shape.dropFirst()) == rowShape, tensor.shape[0] >= 1 else {
            throw ElucidateError(.invalidArgument,
                                 "the perturbations must be (S,\(rowShape.map(String.init).joined(separator: ","))), got \(tensor.shape)")
        }
        return tensor
    }

    /// Refuses fewer than one sample, a spread (`name`: `--noise-stdev`, `--radius`) that is
    /// negative or not finite, and more samples of `rowCount` floats than `MemoryBudget` allows
    /// (the draws are held at once), before anything is allocated.
    static func checkDraws(samples: Int, spread: Float, name: String, rowCount: Int) throws(ElucidateError) {
        guard samples >= 1 else { throw ElucidateError(.invalidArgument, "--samples must be at least 1") }
        guard spread >= 0, spread.isFinite else { throw ElucidateError(.invalidArgument, "--\(name) must be a number ≥ 0") }
        let budget = try MemoryBudget.current()
        let (bytes, overflow) = samples.multipliedReportingOverflow(by: rowCount * MemoryLayout<Float>.size)
        guard !overflow, bytes <= budget.bytes else {
            let fit = budget.bytes / max(1, rowCount * MemoryLayout<Float>.size)
            throw ElucidateError(.invalidArgument,
                                 "--samples \(samples) needs more memory for the perturbations than the budget of \(MemoryBudget.format(budget.bytes)) (\(budget.origin)); at most \(fit) fit")
        }
    }
}
