import CKernels
import ElucidateCore
import ElucidateNN

/// Copies of one image multiplied by masks that are all linear combinations of a few basis
/// masks (Score-CAM's masks are bilinear upsamplings of an h × w map, so combinations of its
/// h·w tent functions). The stem's convolution is linear in its input, so
///
///     conv(x ⊙ Σ_b c_b φ_b) = Σ_b c_b · conv(x ⊙ φ_b):
///
/// the B responses R_b = conv(x ⊙ φ_b) are computed once, and each copy's stem output is
/// `act(Σ_b c_b R_b + bias)` instead of a convolution. A tent function is zero outside a small
/// box, and so is its response outside that box's projective field: only those boxes are kept
/// and summed. Exact in arithmetic; in float32 an output before its activation differs from
/// the direct convolution's by at most (2γ_K + γ_B + 2ε) Σ_t |w_t x_t| S_t plus the bias's
/// rounding, K taps, S_t = Σ_b |c_b φ_b(t)| (1 for a normalised Score-CAM mask, whose
/// coefficients lie in [0, 1] and whose tents sum to one): `MaskedCopiesTests` checks it.
struct MaskedStemEvaluator: MaskedCopiesEvaluator {
    /// Where basis mask b's response can be non-zero: [y0, y1) × [x0, x1) of the stem's output
    /// plane; `offset` locates its values `[outChannels, y1 − y0, x1 − x0]` in `responses`.
    struct Box {
        var y0: Int, y1: Int, x0: Int, x1: Int, offset: Int
        var height: Int { y1 - y0 }
        var width: Int { x1 - x0 }
        var isEmpty: Bool { y1 <= y0 || x1 <= x0 }
    }

    /// The most response floats an evaluator keeps (128 MiB): the ImageNet stem at 224 × 224
    /// with Score-CAM's 7 × 7 tents needs about 5 M.
    static let maximumResponses = 1 << 25

    let network: ResNet
    /// Basis masks B: the width of a row of coefficients.
    let basisCount: Int
    /// The stem's output plane `[outChannels, height, width]`.
    let outChannels: Int, height: Int, width: Int
    let boxes: [Box]
    let responses: [Float]
    let bias: [Float]
    let activation: Activation

    /// The evaluator of `row` `[1, C, H, W]` and `basis` (planes H × W), or nil when it would
    /// not beat `copies` plain stem convolutions by a clear margin, or when the responses
    /// would pass `maximumResponses` floats: building it costs B stem convolutions, and each
    /// copy's sum costs its boxes' area times the stem's channels (counted four times: a sum
    /// streams its responses, a convolution's product does not).
    init?(network: ResNet, row: Tensor, basis: MaskBasis, copies: Int) throws(ElucidateError) {
        try network.validate(inputShape: row.shape)
        let (channels, inHeight, inWidth) = (row.shape[1], row.shape[2], row.shape[3])
        guard row.shape[0] == 1, basis.height == inHeight, basis.width == inWidth else {
            throw ElucidateError(.invalidArgument, "masked copies need one row [1, C, H, W] and a basis of H × W planes, got \(row.shape) and \(basis.height) × \(basis.width)")
        }
        let stem = network.stem
        let outShape = try stem.outputShape(for: row.shape)
        let (outChannels, height, width, basisCount) = (outShape[1], outShape[2], outShape[3], basis.count)
        let stemProducts = outChannels * height * width * channels * stem.kernelSize.h * stem.kernelSize.w
        guard basisCount < copies else { return nil }
        (self.outChannels, self.height, self.width, self.basisCount) = (outChannels, height, width, basisCount)
        self.network = network
        activation = stem.activation
        bias = stem.bias?.scalars ?? [Float](repeating: 0, count: outShape[1])

        // Each basis mask's support, then the output rows and columns whose window reaches it.
        var boxes: [Box] = []
        var area = 0
        for index in 0..<basisCount {
            let plane = basis.plane(index)
            var (y0, y1, x0, x1) = (inHeight, 0, inWidth, 0)
            for y in 0..<inHeight {
                for x in 0..<inWidth where plane[y * inWidth + x] != 0 {
                    (y0, y1, x0, x1) = (min(y0, y), max(y1, y + 1), min(x0, x), max(x1, x + 1))
                }
            }
            // A dilated window spans (kernel − 1)·dilation + 1 inputs; its holes are counted in.
            var box = Box(y0: 0, y1: 0, x0: 0, x1: 0, offset: outChannels * area)
            if y1 > y0 {
                (box.y0, box.y1) = IncrementalEvaluator.affected(
                    y0, y1, kernel: (stem.kernelSize.h - 1) * stem.dilation.h + 1, stride: stem.stride.h,
                    padding: stem.padding.h, outSize: height)
                (box.x0, box.x1) = IncrementalEvaluator.affected(
                    x0, x1, kernel: (stem.kernelSize.w - 1) * stem.dilation.w + 1, stride: stem.stride.w,
                    padding: stem.padding.w, outSize: width)
            }
            if box.isEmpty { (box.y0, box.y1, box.x0, box.x1) = (0, 0, 0, 0) }
            area += box.height * box.width
            boxes.append(box)
        }
        let sumProducts = outChannels * area
        guard basisCount * stemProducts + 4 * copies * sumProducts < copies * stemProducts,
              outChannels * area <= Self.maximumResponses else { return nil }
        self.boxes = boxes

        // The responses, a few bases at a time through the stem's convolution without its
        // bias and activation, cropped to their boxes.
        let linear = Conv2d(weight: stem.weight, bias: nil, stride: stem.stride, padding: stem.padding,
                            dilation: stem.dilation)
        let chunk = max(1, min(basisCount, (1 << 21) / max(1, outChannels * height * width)))
        var responses = [Float](repeating: 0, count: outChannels * area)
        var start = 0
        while start < basisCount {
            let end = min(basisCount, start + chunk)
            let live = (start..<end).filter { !boxes[$0].isEmpty }
            start = end
            guard !live.isEmpty else { continue }
            let masked = Tensor(uninitialized: [live.count, channels, inHeight, inWidth])
            let (x, m) = (row.storage.pointer, masked.storage.pointer)
            let plane = inHeight * inWidth
            for (slot, index) in live.enumerated() {
                let mask = basis.plane(index)
                for c in 0..<channels {
                    for i in 0..<plane { m[(slot * channels + c) * plane + i] = x[c * plane + i] * mask[i] }
                }
            }
            let outputs = try linear(masked)
            responses.withUnsafeMutableBufferPointer { r in
                for (slot, index) in live.enumerated() {
                    let box = boxes[index]
                    IncrementalEvaluator.copy(from: outputs.storage.pointer + slot * outChannels * height * width,
                                              height: height, width: width, origin: (0, 0), channels: outChannels,
                                              to: r.baseAddress! + box.offset, height: box.height, width: box.width,
                                              origin: (box.y0, box.x0), rows: box.y0..<box.y1, columns: box.x0..<box.x1)
                }
            }
        }
        self.responses = responses
    }

    func logits(coefficients: Tensor) throws(ElucidateError) -> Tensor {
        try network.head(network.featureMap(stemOutput: stemOutputs(coefficients: coefficients)))
    }

    /// The stem's outputs `[K, outChannels, height, width]` for coefficients `[K, B]`
    /// (`ek_basis_sum_f32`, the channels split over the threads).
    func stemOutputs(coefficients: Tensor) -> Tensor {
        precondition(coefficients.rank == 2 && coefficients.shape[1] == basisCount, "coefficients must be [K, \(basisCount)]")
        let copies = coefficients.shape[0]
        let output = Tensor(uninitialized: [copies, outChannels, height, width])
        responses.withUnsafeBufferPointer { values in
            let kernelBoxes = boxes.map { box in
                ek_basis_box(y0: Int64(box.y0), height: Int64(box.height), x0: Int64(box.x0), width: Int64(box.width),
                             values: box.isEmpty ? nil : values.baseAddress! + box.offset)
            }
            kernelBoxes.withUnsafeBufferPointer { kernelBoxes in
                bias.withUnsafeBufferPointer { bias in
                    let params = ek_basis_sum_params(
                        copies: Int64(copies), bases: Int64(basisCount), channels: Int64(outChannels), height: Int64(height),
                        width: Int64(width), coefficients: coefficients.storage.pointer, boxes: kernelBoxes.baseAddress,
                        bias: bias.baseAddress, activation: activation.kernelValue, ith: 0, nth: 1)
                    checkKernel(Runtime.parallel(params, maxShares: outChannels, elements: output.count) { share in
                        ek_basis_sum_f32(&share, output.storage.pointer)
                    }, "masked copies' stem")
                }
            }
        }
        return output
    }
}
