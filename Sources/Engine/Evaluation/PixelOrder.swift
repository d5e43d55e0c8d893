import ElucidateCore

/// The order in which deletion and insertion (Petsiuk et al., RISE, 2018) take away or reveal
/// pixels: a pixel's importance is its attribution summed over channels, pixels go by
/// decreasing importance, and ties go by increasing flat index `y·W + x` (a stable sort, as
/// `torch.sort(importance, descending=True, stable=True)`).
public struct PixelOrder: Sendable, Equatable {
    /// Flat pixel indices `y·W + x`, most important first; a permutation of `0..<H·W`.
    public let indices: [Int]

    /// The order of one map `[C, H, W]` or `[1, C, H, W]` (C ≥ 1; channels are summed in
    /// channel order, in float32, as PyTorch's `sum(0)` over a few channels does).
    public init(attributions map: Tensor) throws(ElucidateError) {
        let shape = map.rank == 4 && map.shape[0] == 1 ? Array(map.shape.dropFirst()) : map.shape
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }) else {
            throw ElucidateError(.invalidArgument, "an attribution map must be [C, H, W] or [1, C, H, W], got \(map.shape)")
        }
        let plane = shape[1] * shape[2]
        let importance = Self.importance(map.scalars, channels: shape[0], plane: plane)
        indices = (0..<plane).sorted { a, b in
            importance[a] != importance[b] ? importance[a] > importance[b] : a < b
        }
    }

    /// Σ over channels of `values` `[channels, plane]`, per pixel.
    static func importance(_ values: [Float], channels: Int, plane: Int) -> [Float] {
        var sums = Array(values[0..<plane])
        for channel in 1..<max(1, channels) {
            let offset = channel * plane
            for pixel in 0..<plane { sums[pixel] += values[offset + pixel] }
        }
        return sums
    }

    /// How many pixels step `step` of `steps` takes: round(step·pixels/steps) with Python's
    /// `round` (halves to the even neighbour), computed exactly in integers so that the PyTorch
    /// reference, which writes `round(k * H * W / S)`, gives the same counts.
    public static func count(step: Int, of steps: Int, pixels: Int) -> Int {
        precondition(steps > 0 && step >= 0 && step <= steps, "step must be in 0…steps")
        let numerator = step * pixels
        let (quotient, remainder) = numerator.quotientAndRemainder(dividingBy: steps)
        if 2 * remainder > steps { return quotient + 1 }
        if 2 * remainder == steps { return quotient + (quotient % 2) }
        return quotient
    }
}
