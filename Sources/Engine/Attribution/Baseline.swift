import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// The reference input an attribution is measured from.
public enum Baseline: Sendable {
    /// All zeros (Captum's default).
    case zero
    /// Every element equal to one number.
    case constant(Float)
    /// A tensor of the inputs' shape `[N, C, H, W]`, or `[1, C, H, W]` for every input.
    case tensor(Tensor)

    /// Per-input baselines repeated for inputs whose rows are each repeated `times` times.
    public func repeatingRows(_ times: Int) -> Baseline {
        if case .tensor(let tensor) = self, tensor.rank == 4, tensor.shape[0] > 1 {
            return .tensor(tensor.repeatingRows(times))
        }
        return self
    }

    /// The baseline for `inputs`, shaped like them.
    public func expanded(like inputs: Tensor) throws(ElucidateError) -> Tensor {
        switch self {
        case .zero:
            return Tensor(zeros: inputs.shape)
        case .constant(let value):
            guard value.isFinite else {
                throw ElucidateError(.invalidArgument, "the baseline \(value) is not a finite number")
            }
            return Tensor(shape: inputs.shape, repeating: value)
        case .tensor(let tensor):
            try tensor.requireFinite("the baseline", advice: "a baseline must hold finite numbers only")
            if tensor.shape == inputs.shape { return tensor }
            var single = tensor.shape
            if single.count == inputs.rank - 1 { single = [1] + single }
            guard single.count == inputs.rank, single[0] == 1, Array(single.dropFirst()) == Array(inputs.shape.dropFirst()) else {
                throw ElucidateError(.invalidArgument, "the baseline has shape \(tensor.shape); it must match the input \(inputs.shape) or one of its rows")
            }
            return tensor.reshaped(single).repeatingRows(inputs.shape[0])
        }
    }
}
