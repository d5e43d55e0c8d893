/// The shape of a torchvision-style ResNet, as far as the state dict and the model zoo
/// need it: block type, blocks per stage, stem and head.
public struct ResNetArchitecture: Sendable, Equatable, CustomStringConvertible {
    public enum Block: String, Sendable {
        /// Two 3×3 convolutions (ResNet 18/34); stride on the first.
        case basic
        /// 1×1 → 3×3 → 1×1 with expansion 4 (ResNet 50/101/152); stride on the 3×3 (torchvision v1.5).
        case bottleneck
    }

    public enum Stem: String, Sendable {
        /// 7×7 stride-2 convolution, batch norm, ReLU, 3×3 stride-2 max pool (ImageNet).
        case imagenet
        /// 3×3 stride-1 convolution, batch norm, ReLU, no max pool (small images).
        case small
    }

    public var block: Block
    /// Residual blocks in each of the four stages (`layer1` … `layer4`).
    public var blocksPerStage: [Int]
    public var stem: Stem = .imagenet

    public init(block: Block, blocksPerStage: [Int], stem: Stem = .imagenet) {
        precondition(blocksPerStage.count == 4 && blocksPerStage.allSatisfy { $0 > 0 },
                     "a ResNet has four non-empty stages")
        self.block = block
        self.blocksPerStage = blocksPerStage
        self.stem = stem
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

    /// `resnet34` for the known depths, otherwise a description of the custom layout.
    public var name: String {
        let base = ResNetArchitecture.named.first {
            $0.architecture.block == block && $0.architecture.blocksPerStage == blocksPerStage
        }?.name ?? "resnet(\(block.rawValue) \(blocksPerStage.map(String.init).joined(separator: "-")))"
        return stem == .imagenet ? base : "\(base)-small-stem"
    }

    public var description: String { name }

    /// Residual block depth in convolutions.
    var convolutionsPerBlock: Int { block == .basic ? 2 : 3 }
}
