import CKernels

extension Tensor {
    /// `activation(self + other)`, element-wise; shapes must be equal (the residual addition).
    public func adding(_ other: Tensor, activation: Activation = .identity) -> Tensor {
        precondition(shape == other.shape, "cannot add \(shape) and \(other.shape)")
        let output = Tensor(uninitialized: shape)
        let count = Int64(self.count)
        checkKernel(Runtime.parallel(maxShares: self.count, elements: self.count) { ith, nth in
            ek_add_f32(count, storage.pointer, other.storage.pointer, output.storage.pointer,
                       activation.kernelValue, ith, nth)
        }, "add")
        return output
    }

    /// Element-wise product; shapes must be equal.
    public func multiplying(_ other: Tensor) -> Tensor {
        precondition(shape == other.shape, "cannot multiply \(shape) and \(other.shape)")
        let output = Tensor(uninitialized: shape)
        let count = Int64(self.count)
        checkKernel(Runtime.parallel(maxShares: self.count, elements: self.count) { ith, nth in
            ek_mul_f32(count, storage.pointer, other.storage.pointer, output.storage.pointer, ith, nth)
        }, "mul")
        return output
    }

    /// max(0, x), element-wise.
    public func relu() -> Tensor {
        let output = Tensor(uninitialized: shape)
        let count = Int64(self.count)
        checkKernel(Runtime.parallel(maxShares: self.count, elements: self.count) { ith, nth in
            ek_relu_f32(count, storage.pointer, output.storage.pointer, ith, nth)
        }, "relu")
        return output
    }

    /// Softmax over the last axis of a `[rows, cols]` tensor.
    public func softmax() -> Tensor {
        precondition(rank == 2, "softmax expects [rows, cols], got \(shape)")
        let output = Tensor(uninitialized: shape)
        checkKernel(ek_softmax_f32(Int64(shape[0]), Int64(shape[1]), storage.pointer, output.storage.pointer),
                    "softmax")
        return output
    }

    /// `[N, C, H, W]` → `[N, C·H·W]`.
    public func flattened() -> Tensor {
        precondition(rank >= 1, "cannot flatten a scalar")
        return reshaped([shape[0], shape.dropFirst().reduce(1, *)])
    }

    /// Concatenates `[N, Cᵢ, …]` tensors along channels (axis 1); other axes must agree.
    public static func concatenatingChannels(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "nothing to concatenate")
        let first = parts[0].shape
        precondition(parts.allSatisfy { $0.rank == first.count && $0.shape[0] == first[0]
                         && Array($0.shape.dropFirst(2)) == Array(first.dropFirst(2)) },
                     "concatenation needs equal N and spatial shapes")
        let channels = parts.map { Int64($0.shape[1]) }
        var shape = first
        shape[1] = parts.reduce(0) { $0 + $1.shape[1] }
        let output = Tensor(uninitialized: shape)
        let hw = Int64(first.dropFirst(2).reduce(1, *))
        let pointers: [UnsafePointer<Float>?] = parts.map { UnsafePointer($0.storage.pointer) }
        checkKernel(pointers.withUnsafeBufferPointer { inputs in
            channels.withUnsafeBufferPointer { ch in
                ek_concat_channels_f32(Int64(first[0]), hw, Int32(parts.count), inputs.baseAddress, ch.baseAddress,
                                       output.storage.pointer)
            }
        }, "concat")
        return output
    }
}

extension Tensor {
    /// Splits `[N, ΣCᵢ, …]` into tensors shaped like `shapes` (the backward of concatenation).
    package static func splittingChannels(_ tensor: Tensor, like shapes: [[Int]]) -> [Tensor] {
        let parts = shapes.map { Tensor(uninitialized: $0) }
        let hw = Int64(tensor.shape.dropFirst(2).reduce(1, *))
        let channels = shapes.map { Int64($0[1]) }
        var outputs: [UnsafeMutablePointer<Float>?] = parts.map { $0.storage.pointer }
        checkKernel(channels.withUnsafeBufferPointer { ch in
            outputs.withUnsafeMutableBufferPointer { out in
                ek_concat_channels_back_f32(Int64(tensor.shape[0]), hw, Int32(parts.count), tensor.storage.pointer,
                                            ch.baseAddress, out.baseAddress)
            }
        }, "concat backward")
        return parts
    }

    /// dL/dx of a row-wise softmax from its output and dL/dy.
    package static func softmaxGradient(output: Tensor, gradient: Tensor) -> Tensor {
        let result = Tensor(uninitialized: output.shape)
        checkKernel(ek_softmax_back_f32(Int64(output.shape[0]), Int64(output.shape[1]), output.storage.pointer,
                                        gradient.storage.pointer, result.storage.pointer), "softmax backward")
        return result
    }
}
