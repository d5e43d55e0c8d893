import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// DeepLIFT with the Rescale rule (Shrikumar et al.), as Captum's `DeepLift`: the inputs and
/// their baselines run as one batch; each ReLU passes back Δoutput/Δinput of its pair and each
/// max pool routes multipliers to its windows' maxima; attributions are (input − baseline) ×
/// multipliers.
/// Residual additions and convolutions are linear and need no rule.
public struct DeepLift: BaselineAttributionMethod {
    /// The reference input (Captum's `baselines`); zero by default.
    public var baseline: Baseline
    /// Inputs per pass (each pass runs twice as many rows: inputs and baselines).
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// DeepLIFT against `baseline`, `batchSize` inputs (with their baselines) per pass.
    public init(baseline: Baseline = .zero, batchSize: Int = 8, progress: AttributionProgress? = nil) {
        self.baseline = baseline
        self.batchSize = batchSize
        self.progress = progress
    }

    /// Forward/backward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let baselines = try baseline.expanded(like: inputs)
        let total = passCount(rows: inputs.shape[0], batchSize: batchSize)
        let multipliers = try DeepLift.multipliers(model, inputs: inputs, baselines: baselines, targets: targets,
                                                   batchSize: batchSize, passed: { progress?($0, total) })
        let attributions = inputs.zipMap(baselines) { $0 - $1 }.multiplying(multipliers)
        let delta = try convergenceDelta(attributions, model: model, inputs: inputs, baselines: baselines, targets: targets,
                                         batchSize: batchSize)
        return Attribution(values: attributions, convergenceDelta: delta)
    }

    /// DeepLIFT multipliers `[N, C, H, W]` of each input with respect to its baseline row;
    /// `passed(done)` hears after each forward/backward pass how many have run.
    static func multipliers(_ model: some AttributionModel, inputs: Tensor, baselines: Tensor, targets: [Int],
                            batchSize: Int, passed: (Int) -> Void = { _ in }) throws(ElucidateError) -> Tensor {
        let rows = inputs.shape[0]
        var parts: [Tensor] = []
        var start = 0
        while start < rows {
            let end = min(rows, start + max(1, batchSize))
            let n = end - start
            let graph = Graph(reluRule: .rescale)
            let x = graph.input(Tensor.concatenatingRows([inputs.rows(start..<end), baselines.rows(start..<end)]))
            let logits = try model.logits(x, in: graph)
            let classes = logits.shape[1]
            var seed = Tensor(zeros: logits.shape)
            seed.withUnsafeMutableBufferPointer { s in
                for (row, target) in targets[start..<end].enumerated() { s[row * classes + target] = 1 }
            }
            parts.append(try graph.gradients(of: logits, seed: seed, for: [x])[0].rows(0..<n))
            passed(parts.count)
            start = end
        }
        return Tensor.concatenatingRows(parts)
    }
}

/// DeepLIFT SHAP, as Captum's `DeepLiftShap`: DeepLIFT against every baseline of a
/// distribution `[B, C, H, W]`, averaged over the baselines.
public struct DeepLiftSHAP: AttributionMethod {
    /// The baseline distribution, `[B, C, H, W]` with C, H, W the inputs'.
    public var baselines: Tensor
    /// Input-baseline pairs per forward/backward pass (each pass runs twice as many rows).
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// DeepLIFT SHAP over the rows of `baselines` `[B, C, H, W]`, `batchSize` pairs per pass.
    public init(baselines: Tensor, batchSize: Int = 8, progress: AttributionProgress? = nil) {
        self.baselines = baselines
        self.batchSize = batchSize
        self.progress = progress
    }

    /// Forward/backward passes: ⌈N · B / batchSize⌉ for B baselines (every input-baseline pair,
    /// a chunk per pass).
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0] * (baselines.shape.first ?? 0), batchSize: batchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        guard baselines.rank == 4, baselines.shape[0] >= 1, Array(baselines.shape.dropFirst()) == Array(inputs.shape.dropFirst()) else {
            throw ElucidateError(.invalidArgument, "baselines must have shape (B, \(inputs.shape.dropFirst().map(String.init).joined(separator: ", "))), got \(baselines.shape)")
        }
        try baselines.requireFinite("the baselines", advice: "baselines must hold finite numbers only")
        let rows = inputs.shape[0], count = baselines.shape[0], rowSize = inputs.count / rows
        // Pairs in input-major order: (input 0, baseline 0…B−1), (input 1, …).
        let pairedInputs = inputs.repeatingRows(count)
        let pairedBaselines = Tensor.concatenatingRows(Array(repeating: baselines, count: rows))
        let pairedTargets = targets.flatMap { Array(repeating: $0, count: count) }
        let result = try DeepLift(baseline: .tensor(pairedBaselines), batchSize: batchSize, progress: progress)
            .attribute(model, inputs: pairedInputs, targets: pairedTargets)
        var mean = [Float](repeating: 0, count: inputs.count)
        var deltas = [Float](repeating: 0, count: rows)
        result.values.withUnsafeBufferPointer { values in
            for pair in 0..<rows * count {
                let row = pair / count
                for i in 0..<rowSize { mean[row * rowSize + i] += values[pair * rowSize + i] / Float(count) }
                deltas[row] += (result.convergenceDelta?[pair] ?? 0) / Float(count)
            }
        }
        return Attribution(values: Tensor(shape: inputs.shape, values: mean), convergenceDelta: deltas,
                           details: ["baselines": "\(count) given"])
    }
}
