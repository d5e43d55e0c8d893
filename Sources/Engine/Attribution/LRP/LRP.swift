import ElucidateCore
import ElucidateModels
import ElucidateNN

/// Layer-wise relevance propagation with Zennit 0.5.1's composites on a torchvision-layout
/// ResNet (any depth, BasicBlock or Bottleneck), as `zennit.attribution.Gradient` with
/// `ResNetCanonizer` computes it.
///
/// The batch norms are folded into their convolutions (the canonizer's merge). A forward pass
/// records every layer's input; relevance then starts as the one-hot of each row's target at
/// the logits `[N, classes]` (not the logit's value: Σ relevance ≈ 1 for a bias-free network)
/// and walks back: fc by the composite's classifier rule, the global average pool by the Norm
/// rule (`R_in = x ⊙ (R / s(mean x)) / (h·w)`), each block's ReLU passes it through, its
/// residual sum splits it by the Norm rule (`R_a = a ⊙ R / s(a + b)`, `R_b` alike), the
/// branches' convolutions use the composite's convolution rule, the stem's max pool routes it
/// to each window's maximum (its gradient) and the stem convolution uses the first-layer rule.
/// Output: relevances `[N, C, H, W]`, the inputs' shape.
public struct LRP: AttributionMethod {
    /// Which rules the layers get.
    public var composite: LRPComposite
    /// The Epsilon rule's ε (fc), Zennit's default 1e-6.
    public var epsilon: Float
    /// The Gamma rule's γ (epsilon-gamma-box), Zennit's default 0.25.
    public var gamma: Float
    /// The other rules' (and Norm's) stabilizer, Zennit's default 1e-6.
    public var stabilizer: Float
    /// ZBox's lowest input values, one or one per input channel (epsilon-gamma-box).
    public var low: [Float]
    /// ZBox's highest input values, one or one per input channel (epsilon-gamma-box).
    public var high: [Float]
    /// Inputs per pass.
    public var batchSize: Int
    public var progress: AttributionProgress?

    /// LRP with `composite`. `low`/`high` default to ImageNet's normalisation of [0, 1] pixels,
    /// `(0 − mean) / std` and `(1 − mean) / std` per channel, as Zennit's example uses.
    public init(composite: LRPComposite, epsilon: Float = 1e-6, gamma: Float = 0.25, stabilizer: Float = 1e-6,
                low: [Float]? = nil, high: [Float]? = nil, batchSize: Int = 8, progress: AttributionProgress? = nil) {
        self.composite = composite
        self.epsilon = epsilon
        self.gamma = gamma
        self.stabilizer = stabilizer
        self.low = low ?? LRP.box(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]).low
        self.high = high ?? LRP.box(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]).high
        self.batchSize = batchSize
        self.progress = progress
    }

    /// The bounds of [0, 1] pixels after `Normalize(mean, std)`, per channel (in float32).
    public static func box(mean: [Float], std: [Float]) -> (low: [Float], high: [Float]) {
        (zip(mean, std).map { (0 - $0) / $1 }, zip(mean, std).map { (1 - $0) / $1 })
    }

    /// Throws `.invalidArgument` unless `low` and `high` each hold one value or one per channel.
    public func checkBounds(channels: Int) throws(ElucidateError) {
        let probe = Tensor(zeros: [1, channels, 1, 1])
        _ = try LRPRule.perChannel(low, like: probe, name: "low")
        _ = try LRPRule.perChannel(high, like: probe, name: "high")
    }

    /// Passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        try validate(inputs: inputs, targets: targets, classes: model.classes)
        let network: ResNet
        if let resnet = model as? ResNet { network = resnet } else if let classifier = model as? Classifier {
            network = classifier.network
        } else {
            throw ElucidateError(.invalidArgument, "lrp needs a ResNet model")
        }
        let structure = try network.structure()
        let n = inputs.shape[0]
        let total = progressTotal(inputShape: inputs.shape)
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            let end = min(n, start + max(1, batchSize))
            parts.append(try relevance(structure, inputs: inputs.rows(start..<end), targets: Array(targets[start..<end])))
            start = end
            progress?(parts.count, total)
        }
        return Attribution(values: Tensor.concatenatingRows(parts))
    }

    /// The input relevances `[N, C, H, W]` for one batch.
    func relevance(_ net: ResNetStructure, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Tensor {
        let rules = composite.rules(epsilon: epsilon, gamma: gamma, low: low, high: high)
        // Forward, keeping what the rules need.
        let stemOutput = try net.stem(inputs).relu()
        var x = stemOutput
        if let pool = net.stemPool { x = try pool(x) }
        struct Record { var inputs: [Tensor]; var main: Tensor; var shortcut: Tensor }
        var records: [Record] = []
        for block in net.blocks {
            var convInputs: [Tensor] = []
            var y = x
            for (index, conv) in block.convolutions.enumerated() {
                convInputs.append(y)
                y = try conv(y)
                if index < block.convolutions.count - 1 { y = y.relu() }
            }
            let shortcut = try block.downsample.map { conv throws(ElucidateError) in try conv(x) } ?? x
            records.append(Record(inputs: [x] + convInputs, main: y, shortcut: shortcut))
            x = y.adding(shortcut, activation: .relu)
        }
        let (n, channels) = (x.shape[0], x.shape[1])
        let plane = x.shape[2] * x.shape[3]
        var features = Tensor(zeros: [n, channels])
        x.withUnsafeBufferPointer { a in
            features.withUnsafeMutableBufferPointer { f in
                for index in 0..<(n * channels) {
                    var sum: Float = 0
                    for p in 0..<plane { sum += a[index * plane + p] }
                    f[index] = sum / Float(plane)
                }
            }
        }
        // Backward.
        var oneHot = Tensor(zeros: [n, net.classifier.outFeatures])
        oneHot.withUnsafeMutableBufferPointer { p in
            for (row, target) in targets.enumerated() { p[row * net.classifier.outFeatures + target] = 1 }
        }
        let pooledRelevance = try rules.classifier.propagate(oneHot, through: LRPAffineLayer(net.classifier),
                                                             input: features, stabilizer: stabilizer)
        let pooledShare = pooledRelevance.zipMap(features) { r, z in r / (z + (z >= 0 ? stabilizer : -stabilizer)) / Float(plane) }
        var relevance = Tensor(uninitialized: x.shape)
        relevance.withUnsafeMutableBufferPointer { r in
            x.withUnsafeBufferPointer { a in
                pooledShare.withUnsafeBufferPointer { g in
                    for index in 0..<r.count { r[index] = a[index] * g[index / plane] }
                }
            }
        }
        for (block, record) in zip(net.blocks, records).reversed() {
            let share = relevance.zipMap(record.main.adding(record.shortcut)) { r, z in
                r / (z + (z >= 0 ? stabilizer : -stabilizer))
            }
            var main = record.main.multiplying(share)
            let shortcut = record.shortcut.multiplying(share)
            for (conv, input) in zip(block.convolutions, record.inputs.dropFirst()).reversed() {
                main = try rules.convolutions.propagate(main, through: LRPAffineLayer(conv), input: input,
                                                        stabilizer: stabilizer)
            }
            let shortcutInput = try block.downsample.map { conv throws(ElucidateError) in
                try rules.convolutions.propagate(shortcut, through: LRPAffineLayer(conv), input: record.inputs[0],
                                                 stabilizer: stabilizer)
            } ?? shortcut
            relevance = main.adding(shortcutInput)
        }
        if let pool = net.stemPool {
            let graph = Graph()
            let variable = graph.input(stemOutput)
            let pooled = try graph.pool(variable, pool)
            relevance = try graph.gradients(of: pooled, seed: relevance, for: [variable])[0]
        }
        return try rules.first.propagate(relevance, through: LRPAffineLayer(net.stem), input: inputs, stabilizer: stabilizer)
    }
}
