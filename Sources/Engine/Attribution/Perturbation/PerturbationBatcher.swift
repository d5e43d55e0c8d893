import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Runs a model on perturbed copies of one input, `perPass` copies per forward pass, and
/// returns the target's logit for each copy: the shared engine of the perturbation methods.
struct PerturbationBatcher<Model: AttributionModel> {
    let model: Model
    let perPass: Int

    /// Scores of `count` perturbed copies; `fill(index, row)` writes copy `index` (one input
    /// row of `rowShape`) into `row`, and `passed(done)` hears after each forward pass how many
    /// copies have been scored (for progress).
    func scores(count: Int, rowShape: [Int], target: Int, passed: (Int) -> Void = { _ in },
                fill: (Int, UnsafeMutablePointer<Float>) -> Void) throws(ElucidateError) -> [Float] {
        let rowSize = rowShape.reduce(1, *)
        try PassMemory.require(rows: min(count, max(1, perPass)), rowShape: rowShape, model: model,
                               option: "number of perturbations per pass (--perturbations-per-eval)", recorded: false)
        var result: [Float] = []
        result.reserveCapacity(count)
        var start = 0
        while start < count {
            let end = min(count, start + max(1, perPass))
            var batch = Tensor(uninitialized: [end - start] + rowShape)
            batch.withUnsafeMutableBufferPointer { out in
                for index in start..<end { fill(index, out.baseAddress! + (index - start) * rowSize) }
            }
            let logits = try forward(batch)
            for row in 0..<(end - start) { result.append(logits[row, target]) }
            passed(end)
            start = end
        }
        return result
    }

    /// Logits, through the model's batched path when it has one (`PerturbationEvaluating`).
    func forward(_ batch: Tensor) throws(ElucidateError) -> Tensor {
        if let batched = model as? any PerturbationEvaluating { return try batched.batchedLogits(batch) }
        return try model.logits(batch)
    }

    /// The target's logit for every row of `inputs`.
    func initialScores(_ inputs: Tensor, targets: [Int]) throws(ElucidateError) -> [Float] {
        var result: [Float] = []
        let rows = inputs.shape[0]
        var start = 0
        while start < rows {
            let end = min(rows, start + max(1, perPass))
            let logits = try forward(inputs.rows(start..<end))
            for row in start..<end { result.append(logits[row - start, targets[row]]) }
            start = end
        }
        return result
    }
}
