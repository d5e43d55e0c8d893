import ElucidateCore

/// The memory one forward/backward pass needs, checked before its batch is built.
///
/// Batch sizes (`--internal-batch-size`, `--batch-size`, `--perturbations-per-eval`) are
/// promises of speed, and every method builds its batch — path points, masked or ablated
/// copies — before the network runs. A batch far beyond the machine's memory would otherwise
/// end the process (an allocation failure or the kernel's OOM killer) instead of an error.
/// The estimate per row is the input plus, for a recorded (forward and backward) pass, every
/// leaf module's output of the network (what the graph keeps), or for a plain forward pass four
/// of the largest outputs (what it holds at a time); from one shape-only pass on a single zero
/// row, compared with `MemoryBudget`'s budget. Measured against it: the seed's IG-50 at
/// 224×224 (ResNet34, 50 rows a pass) peaks at 1.3 GB RSS; the estimate says 2.0 GB.
enum PassMemory {
    /// Refuses a pass of `rows` inputs of shape `rowShape` `[C, H, W]` through `model` whose
    /// estimate exceeds the memory budget, with one line naming `option` (the batch-size option
    /// to lower); `recorded`: a forward and backward pass rather than a forward pass alone.
    static func require(rows: Int, rowShape: [Int], model: some AttributionModel, option: String,
                        recorded: Bool = true) throws(ElucidateError) {
        let inputFloats = rowShape.reduce(1) { saturatingProduct($0, $1) }
        let budget = try MemoryBudget.current()
        // The network's activations are at most a few hundred input sizes per row (a ResNet
        // with a stride-1 stem keeps ~150): below this the shape-only pass is not worth it.
        guard let quick = checkedProduct(rows, saturatingProduct(inputFloats, 4 * 1024)), quick <= budget.bytes else {
            let activations = try model.activationFloats(rowShape: rowShape)
            let perRow = saturatingSum(inputFloats, recorded ? activations.total : saturatingProduct(4, activations.largest))
            guard let bytes = checkedProduct(rows, saturatingProduct(perRow, 4)), bytes <= budget.bytes else {
                let fitting = max(0, budget.bytes / max(1, saturatingProduct(perRow, 4)))
                throw ElucidateError(.invalidArgument,
                    "a pass of \(rows) inputs of \(rowShape.map(String.init).joined(separator: "×")) would need about "
                    + (checkedProduct(rows, saturatingProduct(perRow, 4)).map { MemoryBudget.format($0) } ?? "more memory than can be counted")
                    + ", more than the memory budget of \(MemoryBudget.format(budget.bytes)) (\(budget.origin)); "
                    + "at most \(fitting) fit: use a smaller \(option)")
            }
            return
        }
    }
}
