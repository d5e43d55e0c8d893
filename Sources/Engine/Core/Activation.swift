import CKernels

/// An element-wise function fused into the epilogue of a convolution, batch norm or addition.
public enum Activation: Sendable, Equatable {
    /// No function: the values pass unchanged.
    case identity
    /// `max(0, x)`.
    case relu

    package var kernelValue: ek_activation {
        switch self {
        case .identity: EK_ACT_NONE
        case .relu: EK_ACT_RELU
        }
    }
}
