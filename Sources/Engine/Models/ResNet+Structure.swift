import ElucidateCore
import ElucidateNN

/// A ResNet's layers in forward order with every batch norm folded into the convolution
/// before it (exactly Zennit's `SequentialMergeBatchNorm` canonizer, float rounding aside),
/// for backward walks that need the layers themselves (layer-wise relevance propagation).
///
/// The forward it describes: `x = relu(stem(x))`, then `stemPool` (max pool) if present, then
/// per block `relu(main(x) + shortcut(x))` where `main` is the block's convolutions with a ReLU
/// between consecutive ones and `shortcut` is `downsample(x)` or `x`; then global average
/// pooling to `[N, C]` and `classifier`. Every convolution here has an identity activation.
public struct ResNetStructure: Sendable {
    /// One residual block: its main-branch convolutions (2 for BasicBlock, 3 for Bottleneck)
    /// and its shortcut's folded `downsample` convolution, nil for the identity.
    public struct Block: Sendable {
        /// The main branch's folded convolutions, in order (ReLU between them, not after the last).
        public let convolutions: [Conv2d]
        /// The folded `downsample.0`/`downsample.1` convolution, or nil for an identity shortcut.
        public let downsample: Conv2d?
    }
    /// The folded `conv1`/`bn1` (ReLU follows).
    public let stem: Conv2d
    /// `maxpool` after the stem (ImageNet stem), nil for the small-input stem.
    public let stemPool: Pool2d?
    /// Every residual block, stage after stage.
    public let blocks: [Block]
    /// torchvision's `fc` (the only head supported here).
    public let classifier: Linear
}

extension ResNet {
    /// This network's layers for a backward walk (see `ResNetStructure`).
    ///
    /// - Throws: `.invalidArgument` for a fastai head (its batch norms and hidden layer have
    ///   no canonical LRP treatment here).
    public func structure() throws(ElucidateError) -> ResNetStructure {
        guard case .linear(let fc) = head else {
            throw ElucidateError(.invalidArgument,
                                 "this method supports torchvision-layout ResNets (a single fc head), not fastai's head")
        }
        func plain(_ conv: Conv2d) -> Conv2d {
            var copy = conv
            copy.activation = .identity
            return copy
        }
        let blocks = stages.joined().map { block in
            ResNetStructure.Block(convolutions: block.convolutions.map(plain), downsample: block.downsample.map(plain))
        }
        return ResNetStructure(stem: plain(stem), stemPool: stemPool, blocks: blocks, classifier: fc)
    }
}
