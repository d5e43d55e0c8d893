import CKernels
import ElucidateCore

/// A 2-D convolution (groups = 1), PyTorch's `nn.Conv2d`, with an optional fused activation.
///
/// - `weight`: `[outChannels, inChannels, kernelH, kernelW]`
/// - `bias`: `[outChannels]` or nil
/// - input `[N, inChannels, H, W]` → output `[N, outChannels, OH, OW]`,
///   `OH = (H + 2·padH − dilationH·(kernelH − 1) − 1) / strideH + 1`.
public struct Conv2d: Sendable {
    /// The kernels, `[outChannels, inChannels, kernelH, kernelW]`.
    public let weight: Tensor
    /// The bias, `[outChannels]`, or nil for none.
    public let bias: Tensor?
    /// Step between output positions, in input pixels, vertically and horizontally.
    public let stride: (h: Int, w: Int)
    /// Zeros added on each side, in pixels (top and bottom `h`, left and right `w`).
    public let padding: (h: Int, w: Int)
    /// Spacing between kernel taps (1: adjacent pixels).
    public let dilation: (h: Int, w: Int)
    /// Applied after the bias, in the same pass over the output.
    public var activation: Activation = .identity
    /// Winograd-transformed weights, made on first use (the weights never change): for the
    /// forward, and for the input gradient (the weights transposed and flipped).
    let winogradCache = DerivedWeights()
    let winogradBackwardCache = DerivedWeights()
    /// The weights packed for `ek_gemm_packed_f32`, for the im2col forward (`[K, C·R·S]`) and
    /// input gradient (its transpose), made on first use.
    let packedCache = DerivedWeights()
    let packedBackwardCache = DerivedWeights()

    /// Output channels K: `weight.shape[0]`.
    public var outChannels: Int { weight.shape[0] }
    /// Input channels C the layer takes: `weight.shape[1]`.
    public var inChannels: Int { weight.shape[1] }
    /// The kernel's height and width: `weight.shape[2...3]`.
    public var kernelSize: (h: Int, w: Int) { (weight.shape[2], weight.shape[3]) }

    /// A convolution with the same stride, padding and dilation on both axes.
    public init(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        self.init(weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding),
                  dilation: (dilation, dilation))
    }

    /// A convolution with per-axis geometry. Preconditions: `weight` is rank 4, `bias` is
    /// `[outChannels]` or nil, strides and dilations are positive and paddings not negative.
    public init(weight: Tensor, bias: Tensor?, stride: (h: Int, w: Int), padding: (h: Int, w: Int),
                dilation: (h: Int, w: Int)) {
        precondition(weight.rank == 4, "Conv2d weight must be [K, C, R, S], got \(weight.shape)")
        precondition(bias == nil || bias!.shape == [weight.shape[0]], "Conv2d bias must be [K]")
        precondition(stride.h > 0 && stride.w > 0 && dilation.h > 0 && dilation.w > 0
                     && padding.h >= 0 && padding.w >= 0, "invalid Conv2d geometry")
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    func kernelParams(for input: [Int]) -> ek_conv2d_params {
        ek_conv2d_params(
            n: Int64(input[0]), c: Int64(input[1]), h: Int64(input[2]), w: Int64(input[3]),
            k: Int64(outChannels), r: Int64(kernelSize.h), s: Int64(kernelSize.w),
            stride_h: Int64(stride.h), stride_w: Int64(stride.w),
            pad_h: Int64(padding.h), pad_w: Int64(padding.w),
            dilation_h: Int64(dilation.h), dilation_w: Int64(dilation.w),
            activation: activation.kernelValue, ith: 0, nth: 1, winograd_tile: Runtime.winogradTile)
    }

    /// Output shape for an input shape, or an error naming why the input does not fit.
    public func outputShape(for input: [Int]) throws(ElucidateError) -> [Int] {
        guard input.count == 4 else {
            throw ElucidateError(.invalidArgument, "Conv2d expects a 4-D input [N, C, H, W], got \(input)")
        }
        guard input[1] == inChannels else {
            throw ElucidateError(.invalidArgument,
                                 "input has \(input[1]) channels where the layer expects \(inChannels)")
        }
        var params = kernelParams(for: input)
        var oh: Int64 = 0, ow: Int64 = 0
        guard input[0] > 0, ek_conv2d_output_size(&params, &oh, &ow) == EK_OK else {
            throw ElucidateError(.inputTooSmall,
                                 "input of \(input[2])×\(input[3]) pixels is too small for a "
                                 + "\(kernelSize.h)×\(kernelSize.w) convolution with padding \(padding.h)")
        }
        return [input[0], outChannels, Int(oh), Int(ow)]
    }

    /// Convolves a `[N, C, H, W]` input: 3×3 stride-1 kernels through Winograd F(m×m, 3×3)
    /// (when `Runtime.winogradEnabled`), others through im2col and one GEMM per image.
    public func callAsFunction(_ input: Tensor) throws(ElucidateError) -> Tensor {
        let outShape = try outputShape(for: input.shape)
        try Runtime.ensureBLAS()
        if let output = winogradForward(input, outShape: outShape) { return output }
        if Runtime.packedProducts { return packedForward(input, outShape: outShape) }
        var params = kernelParams(for: input.shape)
        let (n, k) = (outShape[0], outShape[1])
        let outPlane = outShape[2] * outShape[3]
        let inImage = input.shape[1] * input.shape[2] * input.shape[3]
        let rows = inChannels * kernelSize.h * kernelSize.w
        let output = Tensor(uninitialized: outShape)
        let scratchCount = Int(ek_conv2d_scratch_size(&params))
        let scratch = scratchCount > 0 ? ScratchBuffer.shared.acquire(count: scratchCount) : nil
        defer { if let scratch { ScratchBuffer.shared.release(scratch) } }

        let x = input.storage.pointer, y = output.storage.pointer
        let w = weight.storage.pointer
        let b = bias?.storage.pointer
        for image in 0..<n {
            let xImage = x + image * inImage
            let yImage = y + image * k * outPlane
            let columns = columnMatrix(of: xImage, params: params, scratch: scratch)
            Runtime.gemm(m: k, n: outPlane, k: rows, a: w, lda: rows, b: columns, ldb: outPlane, c: yImage, ldc: outPlane)
            if b != nil || activation != .identity {
                checkKernel(Runtime.parallel(maxShares: k, elements: k * outPlane) { ith, nth in
                    ek_bias_act_f32(Int64(k), Int64(outPlane), b, activation.kernelValue, yImage, ith, nth)
                }, "conv2d epilogue")
            }
        }
        return output
    }

    /// The column matrix `[C·R·S, OH·OW]` of one image `[C, H, W]`: im2col into `scratch`,
    /// split across threads, or the image itself for a direct 1×1 convolution (no scratch).
    func columnMatrix(of image: UnsafePointer<Float>, params: ek_conv2d_params,
                      scratch: ScratchBuffer.Buffer?) -> UnsafePointer<Float> {
        guard let scratch else { return image }
        let rows = Int(params.c * params.r * params.s)
        var oh: Int64 = 0, ow: Int64 = 0
        var query = params
        checkKernel(ek_conv2d_output_size(&query, &oh, &ow), "conv2d output size")
        checkKernel(Runtime.parallel(params, maxShares: rows, elements: rows * Int(oh * ow)) { share in
            return ek_im2col_f32(&share, image, scratch.pointer)
        }, "im2col")
        return UnsafePointer(scratch.pointer)
    }

    /// This convolution followed by `batchNorm` (inference form) as one convolution with
    /// a bias, and `activation` fused after it. Exact up to float rounding.
    public func folding(_ batchNorm: BatchNorm2d, activation: Activation = .identity) -> Conv2d {
        precondition(batchNorm.channels == outChannels, "batch norm has \(batchNorm.channels) channels, conv \(outChannels)")
        var foldedWeight = weight
        var foldedBias = Tensor(uninitialized: [outChannels])
        let crs = inChannels * kernelSize.h * kernelSize.w
        foldedWeight.withUnsafeMutableBufferPointer { w in
            foldedBias.withUnsafeMutableBufferPointer { out in
                checkKernel(ek_batchnorm_fold_f32(
                    Int64(outChannels), Int64(crs), batchNorm.eps, w.baseAddress!,
                    bias?.storage.pointer, batchNorm.runningMean.storage.pointer,
                    batchNorm.runningVar.storage.pointer, batchNorm.weight?.storage.pointer,
                    batchNorm.bias?.storage.pointer, out.baseAddress!), "batch-norm fold")
            }
        }
        var folded = Conv2d(weight: foldedWeight, bias: foldedBias, stride: stride, padding: padding,
                            dilation: dilation)
        folded.activation = activation
        return folded
    }
}
