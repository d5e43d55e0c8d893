import ElucidateCore

// The differentiable operations: each records its forward result and, beside it, the
// backward that turns the output's gradient into its inputs' gradients.

extension Graph {
    /// A convolution (with its fused activation). Under `.rescale` the activation is
    /// recorded as its own ReLU so DeepLIFT sees the pre-activation. With a `parameterName`,
    /// backward also accumulates `parameterGradients["NAME.weight"]` (and `"NAME.bias"`).
    public func conv2d(_ x: Variable, _ layer: Conv2d, parameterName: String? = nil) throws(ElucidateError) -> Variable {
        if layer.activation == .relu && needsPreActivations {
            var linear = layer
            linear.activation = .identity
            return try relu(conv2d(x, linear, parameterName: parameterName))
        }
        let y = try layer(x.value)
        let rule = reluRule
        let input = x.value
        let fusedReLU = layer.activation == .relu
        let needsInputGradient = x.requiresGradient
        return record(y, inputs: [x], hasParameters: parameterName != nil) { [unowned self] dy throws(ElucidateError) in
            let gradient = fusedReLU ? rule.apply(output: y, gradient: dy) : dy
            if let parameterName {
                let (weight, bias) = try layer.parameterGradients(input: input, outputGradient: gradient)
                accumulate(parameter: "\(parameterName).weight", weight)
                if let bias { accumulate(parameter: "\(parameterName).bias", bias) }
            }
            return [needsInputGradient ? try layer.inputGradient(gradient, inputShape: input.shape) : nil]
        }
    }

    /// An inference-form batch norm (with its fused activation).
    public func batchNorm(_ x: Variable, _ layer: BatchNorm2d) throws(ElucidateError) -> Variable {
        if layer.activation == .relu && needsPreActivations {
            var linear = layer
            linear.activation = .identity
            return try relu(batchNorm(x, linear))
        }
        let y = try layer(x.value)
        let rule = reluRule
        let fusedReLU = layer.activation == .relu
        return record(y, inputs: [x]) { dy in
            [layer.inputGradient(fusedReLU ? rule.apply(output: y, gradient: dy) : dy)]
        }
    }

    /// max(0, x), differentiated by the graph's `reluRule`.
    public func relu(_ x: Variable) -> Variable {
        let y = x.value.relu()
        let rule = reluRule
        let input = x.value
        return record(y, inputs: [x]) { dy in
            [rule == .rescale ? ReLUBackwardRule.rescale(input: input, output: y, gradient: dy)
                              : rule.apply(output: y, gradient: dy)]
        }
    }

    /// `activation(a + b)` — the residual addition.
    public func add(_ a: Variable, _ b: Variable, activation: Activation = .identity) -> Variable {
        if activation == .relu && needsPreActivations {
            return relu(add(a, b))
        }
        let y = a.value.adding(b.value, activation: activation)
        let rule = reluRule
        return record(y, inputs: [a, b]) { dy in
            let gradient = activation == .relu ? rule.apply(output: y, gradient: dy) : dy
            return [gradient, gradient]
        }
    }

    /// Element-wise product.
    public func multiply(_ a: Variable, _ b: Variable) -> Variable {
        let (left, right) = (a.value, b.value)
        return record(left.multiplying(right), inputs: [a, b]) { dy in
            [a.requiresGradient ? dy.multiplying(right) : nil, b.requiresGradient ? dy.multiplying(left) : nil]
        }
    }

    /// Max or average pooling. Under every rule, DeepLIFT's included, the gradient (or
    /// multiplier) of each window goes to its maximum: the DeepLIFT paper's rule for max
    /// pooling, and what Captum's DeepLift computes on ResNets.
    public func pool(_ x: Variable, _ layer: Pool2d) throws(ElucidateError) -> Variable {
        let inputShape = x.shape
        guard case .max = layer.kind else {
            let y = try layer(x.value)
            return record(y, inputs: [x]) { dy in [layer.inputGradient(dy, inputShape: inputShape, argmax: nil)] }
        }
        let outputCount = try layer.outputShape(for: inputShape).reduce(1, *)
        let argmax = IndexBuffer(count: outputCount)
        let y = try layer.forward(x.value, argmax: argmax.pointer)
        return record(y, inputs: [x]) { dy in [layer.inputGradient(dy, inputShape: inputShape, argmax: argmax.pointer)] }
    }

    /// Adaptive max or average pooling.
    public func adaptivePool(_ x: Variable, _ layer: AdaptivePool2d) throws(ElucidateError) -> Variable {
        let inputShape = x.shape
        guard layer.kind == .max else {
            let y = try layer(x.value)
            return record(y, inputs: [x]) { dy in [layer.inputGradient(dy, inputShape: inputShape, argmax: nil)] }
        }
        let argmax = IndexBuffer(count: inputShape[0] * inputShape[1] * layer.outputSize.h * layer.outputSize.w)
        let y = try layer.forward(x.value, argmax: argmax.pointer)
        return record(y, inputs: [x]) { dy in [layer.inputGradient(dy, inputShape: inputShape, argmax: argmax.pointer)] }
    }

    /// A fully connected layer on `[N, in]`; with a `parameterName`, backward also accumulates
    /// `parameterGradients["NAME.weight"]` (and `"NAME.bias"`).
    public func linear(_ x: Variable, _ layer: Linear, parameterName: String? = nil) throws(ElucidateError) -> Variable {
        let y = try layer(x.value)
        let input = x.value
        let needsInputGradient = x.requiresGradient
        return record(y, inputs: [x], hasParameters: parameterName != nil) { [unowned self] dy throws(ElucidateError) in
            if let parameterName {
                let (weight, bias) = try layer.parameterGradients(input: input, outputGradient: dy)
                accumulate(parameter: "\(parameterName).weight", weight)
                if let bias { accumulate(parameter: "\(parameterName).bias", bias) }
            }
            return [needsInputGradient ? try layer.inputGradient(dy) : nil]
        }
    }

    /// Any shape with the same element count, e.g. `[N, C, 1, 1]` → `[N, C]`.
    public func reshape(_ x: Variable, _ shape: [Int]) -> Variable {
        let inputShape = x.shape
        return record(x.value.reshaped(shape), inputs: [x]) { dy in [dy.reshaped(inputShape)] }
    }

    /// Concatenation along channels (axis 1).
    public func concatenateChannels(_ parts: [Variable]) -> Variable {
        let y = Tensor.concatenatingChannels(parts.map(\.value))
        let shapes = parts.map(\.shape)
        return record(y, inputs: parts) { dy in Tensor.splittingChannels(dy, like: shapes) }
    }

    /// Row-wise softmax of `[rows, cols]`.
    public func softmax(_ x: Variable) -> Variable {
        let y = x.value.softmax()
        return record(y, inputs: [x]) { dy in [Tensor.softmaxGradient(output: y, gradient: dy)] }
    }
}

/// Int32 indices kept for a backward pass (max-pool argmax).
final class IndexBuffer: @unchecked Sendable {
    private let allocation: LargeBuffers.Allocation
    let pointer: UnsafeMutablePointer<Int32>
    init(count: Int) {
        allocation = LargeBuffers.Allocation(byteCount: max(count, 1) * MemoryLayout<Int32>.stride)
        pointer = allocation.pointer.bindMemory(to: Int32.self, capacity: max(count, 1))
    }
    deinit { allocation.free() }
}
