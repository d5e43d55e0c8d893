import ElucidateCore
import ElucidateIO
import ElucidateImage
import ElucidateNN

/// The shape of a torchvision-style ResNet, as far as the state dict and the model zoo
/// need it: block type, blocks per stage, stem and head.
public struct ResNetArchitecture: Sendable, Equatable, CustomStringConvertible {
    /// The residual block of every stage.
    public enum Block: String, Sendable {
        /// Two 3×3 convolutions (ResNet 18/34); stride on the first.
        case basic
        /// 1×1 → 3×3 → 1×1 with expansion 4 (ResNet 50/101/152); stride on the 3×3 (torchvision v1.5).
        case bottleneck
    }

    /// The layers before `layer1`.
    public enum Stem: String, Sendable {
        /// 7×7 stride-2 convolution, batch norm, ReLU, 3×3 stride-2 max pool (ImageNet).
        case imagenet
        /// 3×3 stride-1 convolution, batch norm, ReLU, no max pool (small images).
        case small
    }

    /// The classifier head's layout, which also fixes the state dict's key names.
    public enum Head: String, Sendable {
        /// Global average pool and `fc` (torchvision's keys).
        case torchvision
        /// fastai's `create_head` after a body `nn.Sequential` (keys `0.*` and `1.*`).
        case fastai
    }

    /// Basic (two 3×3) or bottleneck (1×1, 3×3, 1×1) blocks.
    public var block: Block
    /// Residual blocks in each of the four stages (`layer1` … `layer4`).
    public var blocksPerStage: [Int]
    /// The stem: ImageNet's (7×7 stride 2 and a max pool) or the small-image one.
    public var stem: Stem = .imagenet
    /// Detected from the keys when a state dict is loaded.
    public var head: Head = .torchvision

    /// An architecture with four non-empty stages (a precondition).
    public init(block: Block, blocksPerStage: [Int], stem: Stem = .imagenet, head: Head = .torchvision) {
        precondition(blocksPerStage.count == 4 && blocksPerStage.allSatisfy { $0 > 0 },
                     "a ResNet has four non-empty stages")
        self.block = block
        self.blocksPerStage = blocksPerStage
        self.stem = stem
        self.head = head
    }

    /// The torchvision depths Elucidate knows by name.
    public static let named: [(name: String, architecture: ResNetArchitecture)] = [
        ("resnet18", ResNetArchitecture(block: .basic, blocksPerStage: [2, 2, 2, 2])),
        ("resnet34", ResNetArchitecture(block: .basic, blocksPerStage: [3, 4, 6, 3])),
        ("resnet50", ResNetArchitecture(block: .bottleneck, blocksPerStage: [3, 4, 6, 3])),
        ("resnet101", ResNetArchitecture(block: .bottleneck, blocksPerStage: [3, 4, 23, 3])),
        ("resnet152", ResNetArchitecture(block: .bottleneck, blocksPerStage: [3, 8, 36, 3])),
    ]

    /// An architecture by name (`resnet34`), nil when unknown.
    public static func named(_ name: String) -> ResNetArchitecture? {
        named.first { $0.name == name.lowercased() }?.architecture
    }

    /// A known name (`resnet34`), optionally with the `-small-stem` suffix.
    public static func parse(_ name: String) throws(ElucidateError) -> ResNetArchitecture {
        let lower = name.lowercased()
        let suffix = "-small-stem"
        let base = lower.hasSuffix(suffix) ? String(lower.dropLast(suffix.count)) : lower
        guard var architecture = named(base) else {
            let known = named.map(\.name).joined(separator: ", ")
            throw ElucidateError(.invalidArgument, "unknown architecture '\(name)' (known: \(known))")
        }
        if lower.hasSuffix(suffix) { architecture.stem = .small }
        return architecture
    }

    /// `resnet34` for the known depths, otherwise a description of the custom layout.
    public var name: String {
        let base = ResNetArchitecture.named.first {
            $0.architecture.block == block && $0.architecture.blocksPerStage == blocksPerStage
        }?.name ?? "resnet(\(block.rawValue) \(blocksPerStage.map(String.init).joined(separator: "-")))"
        return stem == .imagenet ? base : "\(base)-small-stem"
    }

    public var description: String { head == .fastai ? "\(name) with fastai head" : name }

    /// Residual block depth in convolutions.
    var convolutionsPerBlock: Int { block == .basic ? 2 : 3 }
}

extension ResNetArchitecture {
    /// Every float parameter and buffer of this architecture with torchvision's widths
    /// (stem 64, stages 64/128/256/512 × expansion), keyed as in its state dict.
    ///
    /// With the fastai head the body keys are fastai's (`0.0.weight`, `0.4.0.conv1.weight`, …)
    /// and the head is `create_head`'s (`1.2.*` [2·C], `1.4.weight` [hidden, 2·C], `1.6.*`
    /// [hidden], `1.8.weight` [classes, hidden]).
    ///
    /// - Parameters: classes: rows of `fc.weight`; inputChannels: the stem's input channels;
    ///   hiddenFeatures: the fastai head's hidden width.
    public func parameterShapes(classes: Int, inputChannels: Int = 3,
                                hiddenFeatures: Int = 512) -> [(key: String, shape: [Int])] {
        var shapes: [(key: String, shape: [Int])] = []
        func batchNorm(_ prefix: String, _ channels: Int) {
            for name in ["weight", "bias", "running_mean", "running_var"] { shapes.append(("\(prefix).\(name)", [channels])) }
        }
        let stemKernel = stem == .imagenet ? 7 : 3
        shapes.append(("conv1.weight", [64, inputChannels, stemKernel, stemKernel]))
        batchNorm("bn1", 64)
        let expansion = block == .basic ? 1 : 4
        var inChannels = 64
        for (stage, count) in blocksPerStage.enumerated() {
            let planes = 64 << stage
            for index in 0..<count {
                let prefix = "layer\(stage + 1).\(index)"
                let convs: [(Int, Int)]  // (out, kernel) per convolution
                switch block {
                case .basic: convs = [(planes, 3), (planes, 3)]
                case .bottleneck: convs = [(planes, 1), (planes, 3), (planes * expansion, 1)]
                }
                var channels = inChannels
                for (i, (out, kernel)) in convs.enumerated() {
                    shapes.append(("\(prefix).conv\(i + 1).weight", [out, channels, kernel, kernel]))
                    batchNorm("\(prefix).bn\(i + 1)", out)
                    channels = out
                }
                if index == 0 && (stage > 0 || inChannels != planes * expansion) {
                    shapes.append(("\(prefix).downsample.0.weight", [planes * expansion, inChannels, 1, 1]))
                    batchNorm("\(prefix).downsample.1", planes * expansion)
                }
                inChannels = planes * expansion
            }
        }
        switch head {
        case .torchvision:
            shapes.append(("fc.weight", [classes, inChannels]))
            shapes.append(("fc.bias", [classes]))
            return shapes
        case .fastai:
            let layout = ResNetKeyLayout.fastai
            shapes = shapes.map { (layout.originalName($0.key), $0.shape) }
            batchNorm("1.2", 2 * inChannels)
            shapes.append(("1.4.weight", [hiddenFeatures, 2 * inChannels]))
            batchNorm("1.6", hiddenFeatures)
            shapes.append(("1.8.weight", [classes, hiddenFeatures]))
            return shapes
        }
    }
}
