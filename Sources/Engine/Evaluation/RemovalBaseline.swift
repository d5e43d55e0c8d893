import ElucidateCore

/// What deletion puts in place of a removed pixel, and what insertion starts from, in the
/// model's input units (after preprocessing): `--baseline 0|NUMBER|blur|FILE.npy`.
public enum RemovalBaseline: Sendable {
    /// Every channel of a removed pixel set to this value (0 is deletion's default).
    case constant(Float)
    /// The input blurred as RISE blurs it (`RISEBlur`; insertion's default).
    case blur
    /// An image of the input's shape, `[C, H, W]` or `[1, C, H, W]` (one for every row).
    case image(Tensor)

    /// The all-baseline image for one input row `[1, C, H, W]`.
    public func image(for input: Tensor) throws(ElucidateError) -> Tensor {
        switch self {
        case .constant(let value):
            return Tensor(shape: input.shape, repeating: value)
        case .blur:
            return RISEBlur.blurred(input)
        case .image(let image):
            guard image.count == input.count, Array(image.shape.suffix(3)) == Array(input.shape.suffix(3)) else {
                throw ElucidateError(.invalidArgument, "the baseline image has shape \(image.shape), the input \(Array(input.shape.dropFirst()))")
            }
            return image.reshaped(input.shape)
        }
    }

    /// How reports spell it: `0`, `0.5`, `blur`, `image`.
    public var description: String {
        switch self {
        case .constant(let value): return value == value.rounded() && abs(value) < 1e7 ? String(Int(value)) : String(value)
        case .blur: return "blur"
        case .image: return "image"
        }
    }
}
