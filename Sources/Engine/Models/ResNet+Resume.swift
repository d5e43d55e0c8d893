import ElucidateCore

extension ResNet {
    /// The logits `[N, classes]` computed from `output`, the output of the stage or block named
    /// `name` (`layer4`, `layer3.1`, … in this model's naming), running only the blocks after
    /// it and the head; nil for any other layer (whose output the plain forward cannot resume
    /// from). Exact: the same float operations as `logits(_:)` above that layer.
    public func logits(resumingAfter name: String, output: Tensor) throws(ElucidateError) -> Tensor? {
        let resolved = try resolveLayer(name)
        let parts = resolved.split(separator: ".")
        guard parts.first?.hasPrefix("layer") == true, let stage = Int(parts[0].dropFirst(5)), stage >= 1,
              stage <= stages.count, parts.count <= 2 else { return nil }
        var block = stages[stage - 1].count - 1
        if parts.count == 2 {
            guard let index = Int(parts[1]), index >= 0, index < stages[stage - 1].count else { return nil }
            block = index
        }
        var x = output
        for s in (stage - 1)..<stages.count {
            let first = s == stage - 1 ? block + 1 : 0
            for b in stages[s].indices where b >= first { x = try stages[s][b](x) }
        }
        return try head(x)
    }
}
