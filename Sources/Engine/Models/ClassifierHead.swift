import ElucidateCore
import ElucidateIO
import ElucidateImage
import ElucidateNN

/// What turns a ResNet's last feature map `[N, C, H, W]` into logits `[N, classes]`.
public enum ClassifierHead: Sendable {
    /// torchvision: global average pool, flatten, `fc` (`fc.weight`, optional `fc.bias`).
    case linear(Linear)
    /// fastai's default `create_head` (`cnn_learner` / `vision_learner`), in inference form.
    case fastai(FastaiHead)

    /// Number of classes: the width of the logits.
    public var classes: Int {
        switch self {
        case .linear(let fc): fc.outFeatures
        case .fastai(let head): head.output.outFeatures
        }
    }

    /// Channels of the feature map the head takes.
    public var inputChannels: Int {
        switch self {
        case .linear(let fc): fc.inFeatures
        case .fastai(let head): head.firstNorm.channels / 2
        }
    }

    /// Logits `[N, classes]` for the last feature map `[N, C, H, W]`.
    public func callAsFunction(_ features: Tensor) throws(ElucidateError) -> Tensor {
        switch self {
        case .linear(let fc):
            return try fc(AdaptivePool2d(.average, outputSize: 1)(features).flattened())
        case .fastai(let head):
            return try head(features)
        }
    }

    /// The same, recorded in `graph`.
    public func callAsFunction(_ features: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        switch self {
        case .linear(let fc):
            let pooled = try graph.adaptivePool(features, AdaptivePool2d(.average, outputSize: 1))
            return try graph.linear(graph.reshape(pooled, [pooled.shape[0], pooled.shape[1]]), fc)
        case .fastai(let head):
            return try head(features, in: graph)
        }
    }
}

/// fastai's `create_head(nf, n_out)` with its defaults (`lin_ftrs=[512]`, `concat_pool=True`,
/// `first_bn=True`, `bn_final=False`), as an `nn.Sequential` whose state-dict keys are
/// `1.<index>.*`:
///
///     0 AdaptiveConcatPool2d   cat([adaptive max pool(1), adaptive avg pool(1)], dim=1)
///     1 Flatten
///     2 BatchNorm1d(2·nf)      1.2.{weight,bias,running_mean,running_var}
///     3 Dropout                identity at inference
///     4 Linear(2·nf, 512, bias=False)   1.4.weight
///     5 ReLU
///     6 BatchNorm1d(512)       1.6.*
///     7 Dropout                identity
///     8 Linear(512, n_out, bias=False)  1.8.weight
///
/// BatchNorm1d on `[N, C]` is `BatchNorm2d` with one pixel per plane. The ReLU comes
/// before the second batch norm, so it cannot be fused into it (nor into the bias-free
/// linear layer's kernel, which has no activation), and stays its own step.
public struct FastaiHead: Sendable {
    let firstNorm: BatchNorm2d
    let hidden: Linear
    let secondNorm: BatchNorm2d
    let output: Linear

    /// The hidden width (512 by default in fastai).
    public var hiddenFeatures: Int { hidden.outFeatures }

    /// A head from its four layers. They must chain: `firstNorm` has `hidden`'s input width,
    /// `secondNorm` its output width, which `output` takes (a precondition).
    public init(firstNorm: BatchNorm2d, hidden: Linear, secondNorm: BatchNorm2d, output: Linear) {
        precondition(firstNorm.channels == hidden.inFeatures && hidden.outFeatures == secondNorm.channels
                     && secondNorm.channels == output.inFeatures, "fastai head layers do not chain")
        self.firstNorm = firstNorm
        self.hidden = hidden
        self.secondNorm = secondNorm
        self.output = output
    }

    /// Reads `1.2.*`, `1.4.weight`, `1.6.*`, `1.8.weight` for a body giving `channels` channels.
    init(_ stateDict: StateDict, channels: Int) throws(ElucidateError) {
        let firstNorm = try ResNet.batchNorm(stateDict, "1.2", channels: 2 * channels)
        let hiddenWeight = try stateDict.tensor("1.4.weight", rank: 2)
        guard hiddenWeight.shape[1] == 2 * channels else {
            throw ElucidateError(.invalidFormat, "'1.4.weight' takes \(hiddenWeight.shape[1]) features but the concat pool gives \(2 * channels) (2 × \(channels))")
        }
        let secondNorm = try ResNet.batchNorm(stateDict, "1.6", channels: hiddenWeight.shape[0])
        let outputWeight = try stateDict.tensor("1.8.weight", rank: 2)
        guard outputWeight.shape[1] == hiddenWeight.shape[0] else {
            throw ElucidateError(.invalidFormat, "'1.8.weight' takes \(outputWeight.shape[1]) features but '1.4.weight' gives \(hiddenWeight.shape[0])")
        }
        self.init(firstNorm: firstNorm, hidden: Linear(weight: hiddenWeight, bias: nil),
                  secondNorm: secondNorm, output: Linear(weight: outputWeight, bias: nil))
    }

    static let maxPool = AdaptivePool2d(.max, outputSize: 1)
    static let averagePool = AdaptivePool2d(.average, outputSize: 1)

    /// Logits `[N, classes]` from the body's feature map `features` `[N, C, H, W]`.
    public func callAsFunction(_ features: Tensor) throws(ElucidateError) -> Tensor {
        let pooled = Tensor.concatenatingChannels([try Self.maxPool(features), try Self.averagePool(features)])
        var x = try firstNorm(pooled.flattened())
        x = try hidden(x).relu()
        x = try secondNorm(x)
        return try output(x)
    }

    /// The same as `callAsFunction(_:)`, recorded in `graph` for gradients.
    public func callAsFunction(_ features: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        let pooled = graph.concatenateChannels([try graph.adaptivePool(features, Self.maxPool),
                                                try graph.adaptivePool(features, Self.averagePool)])
        var x = graph.reshape(pooled, [pooled.shape[0], pooled.shape[1]])
        x = try graph.batchNorm(x, firstNorm)
        x = graph.relu(try graph.linear(x, hidden))
        x = try graph.batchNorm(x, secondNorm)
        return try graph.linear(x, output)
    }
}

/// The key layouts a ResNet state dict comes in.
public enum ResNetKeyLayout: String, Sendable {
    /// torchvision's module names: `conv1`, `bn1`, `layer1` … `layer4`, `fc`.
    case torchvision
    /// fastai's `nn.Sequential(body, head)`: body `0.0` (conv1), `0.1` (bn1), `0.4` … `0.7`
    /// (layer1 … layer4), head `1.*`.
    case fastai

    /// fastai body prefixes and the torchvision names they stand for.
    static let fastaiBody: [(fastai: String, torchvision: String)] = [
        ("0.0.", "conv1."), ("0.1.", "bn1."), ("0.4.", "layer1."), ("0.5.", "layer2."), ("0.6.", "layer3."), ("0.7.", "layer4."),
    ]

    /// The layout of a state dict: fastai when it has fastai's stem and last head layer.
    static func detect(_ stateDict: StateDict) -> ResNetKeyLayout {
        stateDict.contains("0.0.weight") && !stateDict.contains("conv1.weight")
            && stateDict.keys.contains { $0.hasPrefix("1.") } ? .fastai : .torchvision
    }

    /// A key in torchvision's names (head keys `1.*` unchanged).
    package func torchvisionName(_ key: String) -> String {
        guard self == .fastai else { return key }
        for (fastai, torchvision) in Self.fastaiBody where key.hasPrefix(fastai) {
            return torchvision + key.dropFirst(fastai.count)
        }
        return key
    }

    /// The inverse of `torchvisionName`: a key as this layout spells it.
    func originalName(_ key: String) -> String {
        guard self == .fastai else { return key }
        for (fastai, torchvision) in Self.fastaiBody where key.hasPrefix(torchvision) {
            return fastai + key.dropFirst(torchvision.count)
        }
        return key
    }

    /// The state dict with its body keys in torchvision's names.
    func normalizing(_ stateDict: StateDict) -> StateDict {
        guard self == .fastai else { return stateDict }
        return StateDict(Dictionary(stateDict.tensors.map { (torchvisionName($0.key), $0.value) },
                                    uniquingKeysWith: { first, _ in first }))
    }
}
