import ElucidateCore

/// pytorch-grad-cam 1.5.7's post-processing of a raw CAM (what `cam(input_tensor=…)` returns
/// from `get_cam_image`'s map), for one target layer:
///
/// 1. ReLU: `max(raw, 0)`;
/// 2. per image: `x − min`, then `/ (1e-7 + max)`;
/// 3. per image: `cv2.resize(x, (W, H))` with INTER_LINEAR (half-pixel centres, borders
///    replicated, no antialiasing, float32);
/// 4. the mean over target layers of `max(x, 0)` (one layer: a no-op on values in [0, 1]);
/// 5. per image min-max again, `x − min`, `/ (1e-7 + max)`.
///
/// EigenCAM's raw map is defined only up to sign (an SVD's singular vector); pytorch-grad-cam
/// keeps whichever sign numpy's LAPACK returns, and the ReLU of step 1 then keeps the positive
/// half. Flip the raw map to get the other final map.
public enum CAMPostprocessing {
    /// The final map `[N, 1, H, W]` in [0, 1] from a raw map `[N, 1, h, w]`.
    public static func final(raw: Tensor, height: Int, width: Int) -> Tensor {
        precondition(raw.rank == 4 && raw.shape[1] == 1, "a raw CAM is [N, 1, h, w], got \(raw.shape)")
        let (n, h, w) = (raw.shape[0], raw.shape[2], raw.shape[3])
        var out = [Float]()
        out.reserveCapacity(n * height * width)
        let values = raw.scalars
        for row in 0..<n {
            var image = values[(row * h * w)..<((row + 1) * h * w)].map { max($0, 0) }
            minMax(&image)
            var resized = resizeLinear(image, height: h, width: w, toHeight: height, toWidth: width)
            for i in resized.indices { resized[i] = max(resized[i], 0) }
            minMax(&resized)
            out += resized
        }
        return Tensor(shape: [n, 1, height, width], values: out)
    }

    /// The final map `[N, 1, H, W]` at the input's size `[N, C, H, W]`.
    public static func final(raw: Tensor, inputSize: [Int]) -> Tensor {
        final(raw: raw, height: inputSize[inputSize.count - 2], width: inputSize[inputSize.count - 1])
    }

    /// `x − min(x)`, then `/ (1e-7 + max)`, in float32 as numpy does.
    static func minMax(_ x: inout [Float]) {
        guard let low = x.min() else { return }
        for i in x.indices { x[i] -= low }
        let scale = 1e-7 + (x.max() ?? 0)
        for i in x.indices { x[i] /= scale }
    }

    /// OpenCV's float INTER_LINEAR resize of one `h × w` image (`BilinearResize.halfPixel`).
    static func resizeLinear(_ image: [Float], height h: Int, width w: Int, toHeight oh: Int, toWidth ow: Int) -> [Float] {
        BilinearResize.halfPixel(image, height: h, width: w, toHeight: oh, toWidth: ow)
    }

    /// PyTorch's `UpsamplingBilinear2d` (bilinear with `align_corners=True`) of one `h × w`
    /// image to `oh × ow`: source coordinate `d · (in − 1) / (out − 1)`.
    static func resizeAlignCorners(_ image: UnsafeBufferPointer<Float>, height h: Int, width w: Int,
                                   toHeight oh: Int, toWidth ow: Int, into out: inout [Float]) {
        func axis(_ size: Int, _ out: Int) -> [(Int, Int, Float)] {
            let scale = out > 1 ? Float(size - 1) / Float(out - 1) : 0
            return (0..<out).map { d in
                let s = Float(d) * scale
                let i = min(Int(s), size - 1)
                return (i, min(i + 1, size - 1), s - Float(i))
            }
        }
        let ys = axis(h, oh), xs = axis(w, ow)
        for (oy, (y0, y1, fy)) in ys.enumerated() {
            for (ox, (x0, x1, fx)) in xs.enumerated() {
                let top = image[y0 * w + x0] * (1 - fx) + image[y0 * w + x1] * fx
                let bottom = image[y1 * w + x0] * (1 - fx) + image[y1 * w + x1] * fx
                out[oy * ow + ox] = top * (1 - fy) + bottom * fy
            }
        }
    }
}
