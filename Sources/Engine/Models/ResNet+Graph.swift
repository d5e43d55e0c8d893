import ElucidateCore
import ElucidateIO
import ElucidateImage
import ElucidateNN

extension ResNet {
    /// The forward pass recorded in `graph`: logits `[N, classes]` for `[N, C, H, W]`.
    public func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        try head(featureMap(input, in: graph), in: graph)
    }

    /// The globally average-pooled features `[N, channels]`, recorded in `graph`.
    public func features(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        let pooled = try graph.adaptivePool(featureMap(input, in: graph), globalPool)
        return graph.reshape(pooled, [pooled.shape[0], pooled.shape[1]])
    }

    /// The last stage's feature map `[N, channels, h, w]`, recorded in `graph`.
    public func featureMap(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        try validate(inputShape: input.shape)
        var x = try graph.conv2d(input, stem)
        if let stemPool { x = try graph.pool(x, stemPool) }
        for stage in stages {
            for block in stage { x = try block(x, in: graph) }
        }
        return x
    }
}

extension ResidualBlock {
    func callAsFunction(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
        var x = input
        for conv in convolutions { x = try graph.conv2d(x, conv) }
        var shortcut = input
        if let downsample { shortcut = try graph.conv2d(input, downsample) }
        return graph.add(x, shortcut, activation: .relu)
    }
}
