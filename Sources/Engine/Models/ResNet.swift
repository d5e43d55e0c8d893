/// ElucidateModels: whole classifiers. `ResNet` (forward, graph, incremental evaluation),
/// `Classifier` (a network with its labels and preset, loaded from disk), the heads, the
/// architecture inferred from a state dict, and the built-in models (this target's resource
/// folder `Resources/models`). It may depend on ElucidateCore, ElucidateIO, ElucidateImage,
/// ElucidateNN and CKernels; never on the attribution methods, which reach its fast paths
/// through `PerturbationEvaluating`.

import ElucidateCore
import ElucidateIO
import ElucidateImage
import ElucidateNN

/// A torchvision ResNet prepared for inference: every batch norm is folded into the
/// convolution before it and every ReLU fused into the kernel that precedes it.
///
/// Input `[N, C, H, W]` (C = the stem's input channels, 3 for torchvision) → logits
/// `[N, classes]`. Any H, W ≥ 1 work, as in PyTorch.
///
/// The head is torchvision's (average pool, `fc`) or fastai's `create_head`; a fastai
/// state dict (`0.0.weight` … `1.8.weight`) is recognised from its keys.
public struct ResNet: Sendable {
    /// Depth, block type, stem and head of this network.
    public let architecture: ResNetArchitecture
    /// Channels the stem takes: C of the input `[N, C, H, W]` (3 for torchvision).
    public let inputChannels: Int
    /// Number of classes: the width of the logits `[N, classes]`.
    public let classes: Int

    let stem: Conv2d
    /// The stem's convolution and batch norm as PyTorch runs them (not folded): a forward
    /// that taps `conv1` or `bn1` must see what PyTorch's hooks see (see ResNet+Layers.swift).
    let unfoldedStem: (conv: Conv2d, norm: BatchNorm2d)
    let stemPool: Pool2d?
    let stages: [[ResidualBlock]]
    let globalPool = AdaptivePool2d(.average, outputSize: 1)
    /// What turns the last feature map into logits.
    public let head: ClassifierHead

    /// Builds the network from a state dict whose keys follow torchvision's module paths, or
    /// fastai's `nn.Sequential(body, create_head(...))`.
    ///
    /// - Parameter architecture: the expected layout; nil infers it from the keys and shapes.
    ///   Its `head` is always taken from the keys.
    /// - Throws: `.unknownArchitecture` naming the first missing and unexpected keys when the
    ///   state dict is not (that) ResNet; `.invalidFormat` when shapes are inconsistent.
    public init(stateDict original: StateDict, architecture: ResNetArchitecture? = nil) throws(ElucidateError) {
        let layout = ResNetKeyLayout.detect(original)
        var arch: ResNetArchitecture
        if let architecture { arch = architecture } else { arch = try ResNet.inferArchitecture(original) }
        arch.head = layout == .fastai ? .fastai : .torchvision
        try ResNet.checkKeys(original, against: arch)
        // Every loader (safetensors, .pth, the built-in models, a state dict made in code)
        // comes through here: one pass over the weights, so NaN never reaches a prediction.
        for key in original.keys {
            try original.tensors[key]!.requireFinite("weight '\(key)'", kind: .invalidFormat,
                                                     advice: "the file is damaged or the training diverged")
        }
        let stateDict = layout.normalizing(original)
        self.architecture = arch

        let conv1 = try stateDict.tensor("conv1.weight", rank: 4)
        let stemStride = arch.stem == .imagenet ? 2 : 1
        let stemConv = Conv2d(weight: conv1, stride: stemStride, padding: conv1.shape[2] / 2)
        let stemNorm = try ResNet.batchNorm(stateDict, "bn1", channels: conv1.shape[0])
        stem = stemConv.folding(stemNorm, activation: .relu)
        unfoldedStem = (stemConv, stemNorm)
        stemPool = arch.stem == .imagenet ? .maxPool(kernelSize: 3, stride: 2, padding: 1) : nil
        inputChannels = conv1.shape[1]

        var channels = conv1.shape[0]
        var stages: [[ResidualBlock]] = []
        for (stage, count) in arch.blocksPerStage.enumerated() {
            var blocks: [ResidualBlock] = []
            for index in 0..<count {
                let block = try ResidualBlock(stateDict, prefix: "layer\(stage + 1).\(index)", kind: arch.block,
                                              inChannels: channels, stride: stage > 0 && index == 0 ? 2 : 1)
                channels = block.outChannels
                blocks.append(block)
            }
            stages.append(blocks)
        }
        self.stages = stages

        switch layout {
        case .torchvision:
            let weight = try stateDict.tensor("fc.weight", rank: 2)
            guard weight.shape[1] == channels else {
                throw ElucidateError(.invalidFormat, "'fc.weight' takes \(weight.shape[1]) features but the last stage gives \(channels)")
            }
            let bias = stateDict["fc.bias"]
            if let bias, bias.shape != [weight.shape[0]] {
                throw ElucidateError(.invalidFormat, "'fc.bias' has shape \(bias.shape), expected [\(weight.shape[0])]")
            }
            head = .linear(Linear(weight: weight, bias: bias))
        case .fastai:
            head = .fastai(try FastaiHead(stateDict, channels: channels))
        }
        classes = head.classes
    }

    /// Logits `[N, classes]` for a batch `[N, inputChannels, H, W]`.
    public func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try head(featureMap(input))
    }

    /// The globally average-pooled features `[N, channels]` of the last stage.
    public func features(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try globalPool(featureMap(input)).flattened()
    }

    /// The last stage's feature map `[N, channels, h, w]`, which the head takes.
    public func featureMap(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try validate(inputShape: input.shape)
        return try featureMap(stemOutput: try stem(input))
    }

    /// The last stage's feature map computed from the stem's output (its convolution with the
    /// batch norm folded and the ReLU applied, `[N, 64, H/2, W/2]` for torchvision): the stem's
    /// pooling, every stage and block. `featureMap(_:)` is `featureMap(stemOutput: stem(input))`.
    func featureMap(stemOutput: Tensor) throws(ElucidateError) -> Tensor {
        var x = stemOutput
        if let stemPool { x = try stemPool(x) }
        for stage in stages {
            for block in stage { x = try block(x) }
        }
        return x
    }

    /// Checks that a batch `[N, inputChannels, H, W]` fits the network.
    func validate(inputShape shape: [Int]) throws(ElucidateError) {
        guard shape.count == 4 else {
            throw ElucidateError(.invalidArgument, "the model expects an input of shape [N, \(inputChannels), H, W], got \(shape)")
        }
        guard shape[1] == inputChannels else {
            throw ElucidateError(.invalidArgument, "the model expects \(inputChannels) input channels, got \(shape[1])")
        }
        guard shape[0] > 0, shape[2] > 0, shape[3] > 0 else {
            throw ElucidateError(.inputTooSmall, "the input \(shape) is empty")
        }
    }

    // MARK: - State dict mapping

    static func batchNorm(_ stateDict: StateDict, _ prefix: String, channels: Int) throws(ElucidateError) -> BatchNorm2d {
        var parts: [Tensor] = []
        for name in ["weight", "bias", "running_mean", "running_var"] {
            let tensor = try stateDict.tensor("\(prefix).\(name)", rank: 1)
            guard tensor.count == channels else {
                throw ElucidateError(.invalidFormat, "'\(prefix).\(name)' has \(tensor.count) channels, expected \(channels)")
            }
            parts.append(tensor)
        }
        return BatchNorm2d(weight: parts[0], bias: parts[1], runningMean: parts[2], runningVar: parts[3])
    }

    /// Infers block type, stage depths, stem and head from the keys and the stem's kernel size.
    public static func inferArchitecture(_ original: StateDict) throws(ElucidateError) -> ResNetArchitecture {
        let layout = ResNetKeyLayout.detect(original)
        let stateDict = layout.normalizing(original)
        let head: ResNetArchitecture.Head = layout == .fastai ? .fastai : .torchvision
        var fallback = ResNetArchitecture.named("resnet18")!
        fallback.head = head
        guard stateDict.contains("conv1.weight"), stateDict.contains("layer1.0.conv1.weight") else {
            throw mismatch(original, fallback, label: "any known architecture")
        }
        let block: ResNetArchitecture.Block = stateDict.contains("layer1.0.conv3.weight") ? .bottleneck : .basic
        var counts: [Int] = []
        for stage in 1...4 {
            var count = 0
            while stateDict.contains("layer\(stage).\(count).conv1.weight") { count += 1 }
            guard count > 0 else {
                throw mismatch(original, fallback, label: "any known architecture")
            }
            counts.append(count)
        }
        let stemKernel = stateDict["conv1.weight"].flatMap { $0.rank == 4 ? $0.shape[2] : nil } ?? 7
        return ResNetArchitecture(block: block, blocksPerStage: counts, stem: stemKernel >= 7 ? .imagenet : .small,
                                  head: head)
    }

    /// Every float key the architecture reads, in torchvision's names (fastai head keys
    /// `1.*` as they are). Downsample keys are expected where torchvision creates them: the
    /// first block of a stage whose stride or width changes. `stateDict` is in torchvision's names.
    static func expectedKeys(_ arch: ResNetArchitecture, _ stateDict: StateDict) -> Set<String> {
        func batchNormKeys(_ prefix: String) -> [String] {
            ["weight", "bias", "running_mean", "running_var"].map { "\(prefix).\($0)" }
        }
        var keys: Set<String> = ["conv1.weight"]
        switch arch.head {
        case .torchvision:
            keys.formUnion(["fc.weight", "fc.bias"])
        case .fastai:
            keys.formUnion(batchNormKeys("1.2") + ["1.4.weight"] + batchNormKeys("1.6") + ["1.8.weight"])
        }
        keys.formUnion(batchNormKeys("bn1"))
        for (stage, count) in arch.blocksPerStage.enumerated() {
            for index in 0..<count {
                let prefix = "layer\(stage + 1).\(index)"
                for conv in 1...arch.convolutionsPerBlock {
                    keys.insert("\(prefix).conv\(conv).weight")
                    keys.formUnion(batchNormKeys("\(prefix).bn\(conv)"))
                }
                let needsDownsample = index == 0 && (stage > 0 || arch.block == .bottleneck)
                if needsDownsample || (index == 0 && stateDict.contains("\(prefix).downsample.0.weight")) {
                    keys.insert("\(prefix).downsample.0.weight")
                    keys.formUnion(batchNormKeys("\(prefix).downsample.1"))
                }
            }
        }
        return keys
    }

    /// Checks the keys of `stateDict` (in its own layout) against `arch`, whose `head` says
    /// which layout is expected.
    static func checkKeys(_ original: StateDict, against arch: ResNetArchitecture) throws(ElucidateError) {
        let layout: ResNetKeyLayout = arch.head == .fastai ? .fastai : .torchvision
        let stateDict = layout.normalizing(original)
        let expected = expectedKeys(arch, stateDict)
        var actual = Set(stateDict.keys)
        if arch.head == .torchvision && !actual.contains("fc.bias") { actual.insert("fc.bias") }  // a bias-free head is fine
        if actual != expected || stateDict.tensors.count != original.tensors.count {
            throw mismatch(original, arch, label: arch.description)
        }
    }

    /// Names the first missing and unexpected keys, spelled as the state dict's layout
    /// spells them (fastai's `0.4.0.conv1.weight`, not `layer1.0.conv1.weight`).
    private static func mismatch(_ original: StateDict, _ arch: ResNetArchitecture, label: String) -> ElucidateError {
        let layout: ResNetKeyLayout = arch.head == .fastai ? .fastai : .torchvision
        let stateDict = layout.normalizing(original)
        let expected = Set(expectedKeys(arch, stateDict).map(layout.originalName))
        let actual = Set(original.keys)
        let missing = expected.subtracting(actual).subtracting(["fc.bias"]).sorted()
        let unexpected = actual.subtracting(expected).sorted()
        var parts: [String] = []
        if !missing.isEmpty {
            parts.append("missing \(missing.prefix(3).map { "'\($0)'" }.joined(separator: ", "))"
                         + (missing.count > 3 ? " and \(missing.count - 3) more" : ""))
        }
        if !unexpected.isEmpty {
            parts.append("unexpected \(unexpected.prefix(3).map { "'\($0)'" }.joined(separator: ", "))"
                         + (unexpected.count > 3 ? " and \(unexpected.count - 3) more" : ""))
        }
        return ElucidateError(.unknownArchitecture,
                              "state dict does not match \(label) (\(parts.joined(separator: "; ")))")
    }
}

/// One residual block with batch norms folded: `relu(convs(x) + shortcut(x))`.
struct ResidualBlock: Sendable {
    let convolutions: [Conv2d]
    let downsample: Conv2d?
    /// The same layers unfolded, as PyTorch runs them: the weights are the state dict's own
    /// tensors (shared, not copied), kept so a forward that taps a layer inside the block
    /// sees exactly a convolution's output before its batch norm.
    let unfolded: [(conv: Conv2d, norm: BatchNorm2d)]
    /// The shortcut's `downsample.0` and `downsample.1`, unfolded.
    let unfoldedDownsample: (conv: Conv2d, norm: BatchNorm2d)?
    var outChannels: Int { convolutions.last!.outChannels }

    init(_ stateDict: StateDict, prefix: String, kind: ResNetArchitecture.Block, inChannels: Int,
         stride: Int) throws(ElucidateError) {
        let count = kind == .basic ? 2 : 3
        // torchvision puts the stride on conv1 of a BasicBlock and conv2 of a Bottleneck.
        let strided = kind == .basic ? 1 : 2
        var convolutions: [Conv2d] = []
        var unfolded: [(conv: Conv2d, norm: BatchNorm2d)] = []
        var channels = inChannels
        for index in 1...count {
            let key = "\(prefix).conv\(index).weight"
            let weight = try stateDict.tensor(key, rank: 4)
            guard weight.shape[1] == channels else {
                throw ElucidateError(.invalidFormat, "'\(key)' takes \(weight.shape[1]) channels but receives \(channels)")
            }
            let conv = Conv2d(weight: weight, stride: index == strided ? stride : 1, padding: weight.shape[2] / 2)
            let norm = try ResNet.batchNorm(stateDict, "\(prefix).bn\(index)", channels: weight.shape[0])
            convolutions.append(conv.folding(norm, activation: index < count ? .relu : .identity))
            unfolded.append((conv, norm))
            channels = weight.shape[0]
        }
        self.convolutions = convolutions
        self.unfolded = unfolded
        if stateDict.contains("\(prefix).downsample.0.weight") {
            let weight = try stateDict.tensor("\(prefix).downsample.0.weight", rank: 4)
            guard weight.shape[1] == inChannels, weight.shape[0] == channels else {
                throw ElucidateError(.invalidFormat, "'\(prefix).downsample.0.weight' has shape \(weight.shape), expected [\(channels), \(inChannels), 1, 1]")
            }
            let norm = try ResNet.batchNorm(stateDict, "\(prefix).downsample.1", channels: channels)
            downsample = Conv2d(weight: weight, stride: stride).folding(norm)
            unfoldedDownsample = (Conv2d(weight: weight, stride: stride), norm)
        } else {
            guard inChannels == channels, stride == 1 else {
                throw ElucidateError(.unknownArchitecture, "missing key '\(prefix).downsample.0.weight'")
            }
            downsample = nil
            unfoldedDownsample = nil
        }
    }

    func callAsFunction(_ input: Tensor) throws(ElucidateError) -> Tensor {
        var x = input
        for conv in convolutions { x = try conv(x) }
        var shortcut = input
        if let downsample { shortcut = try downsample(input) }
        return x.adding(shortcut, activation: .relu)
    }
}
