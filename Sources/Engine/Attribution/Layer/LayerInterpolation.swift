import ElucidateCore

/// How a layer attribution `[N, C, h, w]` is resized to the input's H, W: Captum's
/// `LayerAttribution.interpolate`, which is `F.interpolate(…, mode)` with PyTorch's
/// defaults (`align_corners=False`).
public enum LayerInterpolation: String, Sendable, CaseIterable {
    /// `mode="nearest"`: source index ⌊dst · in/out⌋ (PyTorch's legacy nearest).
    case nearest
    /// `mode="bilinear"`, `align_corners=False`: half-pixel centres, edges clamped.
    case bilinear

    /// `values` `[N, C, h, w]` resized to `[N, C, height, width]`, in float32 as PyTorch's
    /// CPU kernels compute it.
    public func resize(_ values: Tensor, height: Int, width: Int) throws(ElucidateError) -> Tensor {
        guard values.rank == 4 else {
            throw ElucidateError(.invalidArgument, "only a 4-D layer attribution [N, C, h, w] can be upsampled, got \(values.shape)")
        }
        let (planes, inH, inW) = (values.shape[0] * values.shape[1], values.shape[2], values.shape[3])
        let rowsH = indices(input: inH, output: height)
        let colsW = indices(input: inW, output: width)
        var out = [Float](repeating: 0, count: planes * height * width)
        values.withUnsafeBufferPointer { v in
            for plane in 0..<planes {
                let src = v.baseAddress! + plane * inH * inW
                for y in 0..<height {
                    let (y0, y1, ly) = rowsH[y]
                    for x in 0..<width {
                        let (x0, x1, lx) = colsW[x]
                        let value: Float
                        switch self {
                        case .nearest:
                            value = src[y0 * inW + x0]
                        case .bilinear:
                            value = (1 - ly) * ((1 - lx) * src[y0 * inW + x0] + lx * src[y0 * inW + x1])
                                + ly * ((1 - lx) * src[y1 * inW + x0] + lx * src[y1 * inW + x1])
                        }
                        out[(plane * height + y) * width + x] = value
                    }
                }
            }
        }
        return Tensor(shape: [values.shape[0], values.shape[1], height, width], values: out)
    }

    /// For each output index: the two source indices and the weight of the second
    /// (nearest: one index, weight 0).
    private func indices(input: Int, output: Int) -> [(Int, Int, Float)] {
        let scale = Float(input) / Float(output)  // PyTorch's area_pixel_compute_scale, in float
        return (0..<output).map { dst in
            switch self {
            case .nearest:
                let src = input == output ? dst : Swift.min(Int((Float(dst) * scale).rounded(.down)), input - 1)
                return (src, src, 0)
            case .bilinear:
                let real = Swift.max(scale * (Float(dst) + 0.5) - 0.5, 0)
                let i0 = Swift.min(Int(real.rounded(.down)), input - 1)
                let lambda = Swift.min(Swift.max(real - Float(i0), 0), 1)
                return (i0, i0 + (i0 < input - 1 ? 1 : 0), lambda)
            }
        }
    }
}
