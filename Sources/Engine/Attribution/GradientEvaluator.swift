import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Gradients of target logits with respect to input batches, computed in chunks so that
/// memory stays bounded by `batchSize` forward passes.
struct GradientEvaluator<Model: AttributionModel> {
    let model: Model
    /// Inputs per forward/backward pass.
    let batchSize: Int
    var reluRule: ReLUBackwardRule = .gradient
    /// Whether the caller has already checked a pass of `batchSize` rows against the memory
    /// budget (the check runs a shape-only forward pass: once per method, not once per chunk).
    var memoryChecked = false

    /// For inputs `[B, C, H, W]` and B targets: d logit[b, targets[b]] / d inputs[b], and the
    /// target logits themselves. `passed(done)` hears after each forward/backward pass how many
    /// passes have run, of `passCount(rows: B, batchSize: batchSize)`.
    func gradients(_ inputs: Tensor, targets: [Int],
                   passed: (Int) -> Void = { _ in }) throws(ElucidateError) -> (gradients: Tensor, scores: [Float]) {
        precondition(targets.count == inputs.shape[0], "one target per input")
        let rows = inputs.shape[0]
        let rowSize = inputs.count / max(rows, 1)
        if !memoryChecked {
            try PassMemory.require(rows: min(rows, max(1, batchSize)), rowShape: Array(inputs.shape.dropFirst()), model: model,
                                   option: "batch size")
        }
        var gradients = Tensor(uninitialized: inputs.shape)
        var scores: [Float] = []
        scores.reserveCapacity(rows)
        var start = 0, passes = 0
        while start < rows {
            let end = min(rows, start + max(1, batchSize))
            let chunk = inputs.rows(start..<end)
            let graph = Graph(reluRule: reluRule)
            let x = graph.input(chunk)
            let logits = try model.logits(x, in: graph)
            let classes = logits.shape[1]
            var seed = Tensor(zeros: logits.shape)
            logits.value.withUnsafeBufferPointer { values in
                seed.withUnsafeMutableBufferPointer { s in
                    for (row, target) in targets[start..<end].enumerated() {
                        s[row * classes + target] = 1
                        scores.append(values[row * classes + target])
                    }
                }
            }
            let gradient = try graph.gradients(of: logits, seed: seed, for: [x])[0]
            gradients.withUnsafeMutableBufferPointer { g in
                gradient.withUnsafeBufferPointer { src in
                    (g.baseAddress! + start * rowSize).update(from: src.baseAddress!, count: src.count)
                }
            }
            passes += 1
            passed(passes)
            start = end
        }
        return (gradients, scores)
    }

    /// The backward seed that picks each row's target logit: one-hot rows of `logits`' shape.
    static func seed(logits: Tensor, targets: ArraySlice<Int>) -> Tensor {
        let classes = logits.shape[1]
        var seed = Tensor(zeros: logits.shape)
        seed.withUnsafeMutableBufferPointer { s in
            for (row, target) in targets.enumerated() { s[row * classes + target] = 1 }
        }
        return seed
    }

    /// Target logits only (no graph).
    func scores(_ inputs: Tensor, targets: [Int]) throws(ElucidateError) -> [Float] {
        var scores: [Float] = []
        let rows = inputs.shape[0]
        var start = 0
        while start < rows {
            let end = min(rows, start + max(1, batchSize))
            let logits = try model.logits(inputs.rows(start..<end))
            let classes = logits.shape[1]
            logits.withUnsafeBufferPointer { values in
                for (row, target) in targets[start..<end].enumerated() {
                    scores.append(values[row * classes + target])
                }
            }
            start = end
        }
        return scores
    }
}
