import CKernels
import ElucidateCore

/// PyTorch's `nn.MaxPool2d` / `nn.AvgPool2d`: input `[N, C, H, W]` → `[N, C, OH, OW]`.
public struct Pool2d: Sendable {
    /// Which reduction the window applies.
    public enum Kind: Sendable {
        /// The window's largest value (padding never wins).
        case max
        /// The window's mean; `countIncludePad` counts padded zeros in the divisor, as
        /// PyTorch's `count_include_pad`.
        case average(countIncludePad: Bool)
    }

    /// Max or average pooling.
    public let kind: Kind
    /// The window's height and width, in pixels.
    public let kernelSize: (h: Int, w: Int)
    /// Step between windows (the window size unless given).
    public let stride: (h: Int, w: Int)
    /// Implicit padding on each side (−∞ for max, zeros for average).
    public let padding: (h: Int, w: Int)
    /// Spacing between window taps (1: adjacent pixels).
    public let dilation: (h: Int, w: Int)
    /// Whether the output size rounds up (PyTorch's `ceil_mode`) rather than down.
    public let ceilMode: Bool

    /// A square pool; `stride` defaults to `kernelSize`. Preconditions: positive sizes and
    /// `padding` at most half the window, as PyTorch requires.
    public init(_ kind: Kind, kernelSize: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1,
                ceilMode: Bool = false) {
        precondition(kernelSize > 0 && (stride ?? 1) > 0 && padding >= 0 && dilation > 0
                     && padding * 2 <= kernelSize, "invalid pooling geometry")
        self.kind = kind
        self.kernelSize = (kernelSize, kernelSize)
        self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = (padding, padding)
        self.dilation = (dilation, dilation)
        self.ceilMode = ceilMode
    }

    /// `nn.MaxPool2d(kernelSize, stride, padding)`.
    public static func maxPool(kernelSize: Int, stride: Int? = nil, padding: Int = 0) -> Pool2d {
        Pool2d(.max, kernelSize: kernelSize, stride: stride, padding: padding)
    }

    private func params(for shape: [Int]) -> ek_pool2d_params {
        var countIncludePad: Int32 = 0
        if case .average(let include) = kind { countIncludePad = include ? 1 : 0 }
        return ek_pool2d_params(
            n: Int64(shape[0]), c: Int64(shape[1]), h: Int64(shape[2]), w: Int64(shape[3]),
            kh: Int64(kernelSize.h), kw: Int64(kernelSize.w), stride_h: Int64(stride.h), stride_w: Int64(stride.w),
            pad_h: Int64(padding.h), pad_w: Int64(padding.w),
            dilation_h: Int64(dilation.h), dilation_w: Int64(dilation.w),
            ceil_mode: ceilMode ? 1 : 0, count_include_pad: countIncludePad, ith: 0, nth: 1)
    }

    /// `[N, C, OH, OW]` for an input shape `[N, C, H, W]`.
    ///
    /// - Throws: `.invalidArgument` unless the shape has rank 4; `.inputTooSmall` when the
    ///   window does not fit.
    public func outputShape(for input: [Int]) throws(ElucidateError) -> [Int] {
        guard input.count == 4 else {
            throw ElucidateError(.invalidArgument, "pooling expects a 4-D input [N, C, H, W], got \(input)")
        }
        var p = params(for: input)
        var oh: Int64 = 0, ow: Int64 = 0
        guard ek_pool2d_output_size(&p, &oh, &ow) == EK_OK else {
            throw ElucidateError(.inputTooSmall,
                                 "input of \(input[2])×\(input[3]) pixels is too small for a "
                                 + "\(kernelSize.h)×\(kernelSize.w) pooling window")
        }
        return [input[0], input[1], Int(oh), Int(ow)]
    }

    /// Pools `input` `[N, C, H, W]` into `[N, C, OH, OW]`; throws as `outputShape(for:)`.
    public func callAsFunction(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try forward(input, argmax: nil)
    }

    /// The forward pass; for a max pool `argmax` (one Int32 per output element) receives each
    /// window's maximum as a flat index into its input plane, -1 where the window is all padding.
    func forward(_ input: Tensor, argmax: UnsafeMutablePointer<Int32>?) throws(ElucidateError) -> Tensor {
        let outShape = try outputShape(for: input.shape)
        let output = Tensor(uninitialized: outShape)
        let base = params(for: input.shape)
        let kind = self.kind
        checkKernel(Runtime.parallel(base, maxShares: outShape[0] * outShape[1], elements: input.count) { share in
            switch kind {
            case .max: return ek_maxpool2d_f32(&share, input.storage.pointer, output.storage.pointer, argmax)
            case .average: return ek_avgpool2d_f32(&share, input.storage.pointer, output.storage.pointer)
            }
        }, "pool2d")
        return output
    }

    /// Input gradient `[N, C, H, W]` from the output gradient; a max pool needs the forward's argmax.
    func inputGradient(_ outputGradient: Tensor, inputShape: [Int], argmax: UnsafePointer<Int32>?) -> Tensor {
        let gradient = Tensor(uninitialized: inputShape)
        var p = params(for: inputShape)
        switch kind {
        case .max:
            precondition(argmax != nil, "max-pool backward needs the forward's argmax")
            checkKernel(ek_maxpool2d_back_f32(&p, outputGradient.storage.pointer, argmax, gradient.storage.pointer), "max-pool backward")
        case .average:
            checkKernel(ek_avgpool2d_back_f32(&p, outputGradient.storage.pointer, gradient.storage.pointer), "avg-pool backward")
        }
        return gradient
    }
}

/// PyTorch's `nn.AdaptiveAvgPool2d` / `nn.AdaptiveMaxPool2d`: `[N, C, H, W]` → `[N, C, OH, OW]`.
public struct AdaptivePool2d: Sendable {
    /// Which reduction each output cell applies to its region.
    public enum Kind: Sendable {
        /// Each region's largest value (`nn.AdaptiveMaxPool2d`).
        case max
        /// Each region's mean (`nn.AdaptiveAvgPool2d`).
        case average
    }
    /// Max or average pooling.
    public let kind: Kind
    /// OH and OW, the output's height and width.
    public let outputSize: (h: Int, w: Int)

    /// A pool to `outputSize × outputSize` (positive: a precondition).
    public init(_ kind: Kind, outputSize: Int) {
        precondition(outputSize > 0, "adaptive pool output size must be positive")
        self.kind = kind
        self.outputSize = (outputSize, outputSize)
    }

    /// Pools `input` `[N, C, H, W]` into `[N, C, OH, OW]`, regions split as PyTorch does.
    public func callAsFunction(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try forward(input, argmax: nil)
    }

    private func params(for s: [Int]) -> ek_adaptive_pool2d_params {
        ek_adaptive_pool2d_params(n: Int64(s[0]), c: Int64(s[1]), h: Int64(s[2]), w: Int64(s[3]),
                                  out_h: Int64(outputSize.h), out_w: Int64(outputSize.w), ith: 0, nth: 1)
    }

    /// The forward pass; for a max pool `argmax` receives each bin's maximum (flat index
    /// into its input plane).
    func forward(_ input: Tensor, argmax: UnsafeMutablePointer<Int32>?) throws(ElucidateError) -> Tensor {
        guard input.rank == 4, input.shape[2] > 0, input.shape[3] > 0 else {
            throw ElucidateError(.invalidArgument, "adaptive pooling expects a non-empty [N, C, H, W], got \(input.shape)")
        }
        let s = input.shape
        let output = Tensor(uninitialized: [s[0], s[1], outputSize.h, outputSize.w])
        let base = params(for: s)
        let kind = self.kind
        checkKernel(Runtime.parallel(base, maxShares: s[0] * s[1], elements: input.count) { share in
            switch kind {
            case .max: return ek_adaptive_maxpool2d_f32(&share, input.storage.pointer, output.storage.pointer, argmax)
            case .average: return ek_adaptive_avgpool2d_f32(&share, input.storage.pointer, output.storage.pointer)
            }
        }, "adaptive pool2d")
        return output
    }

    /// Input gradient `[N, C, H, W]`; a max pool needs the forward's argmax.
    func inputGradient(_ outputGradient: Tensor, inputShape: [Int], argmax: UnsafePointer<Int32>?) -> Tensor {
        let gradient = Tensor(uninitialized: inputShape)
        var p = params(for: inputShape)
        switch kind {
        case .max:
            precondition(argmax != nil, "adaptive max-pool backward needs the forward's argmax")
            checkKernel(ek_adaptive_maxpool2d_back_f32(&p, outputGradient.storage.pointer, argmax, gradient.storage.pointer),
                        "adaptive max-pool backward")
        case .average:
            checkKernel(ek_adaptive_avgpool2d_back_f32(&p, outputGradient.storage.pointer, gradient.storage.pointer),
                        "adaptive avg-pool backward")
        }
        return gradient
    }
}
