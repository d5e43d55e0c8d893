import ElucidateCore
import Foundation

/// The blurred image that RISE's insertion metric starts from (Petsiuk et al. 2018, the
/// authors' `evaluation.py`): `gkern(klen=11, nsig=5)` is `scipy.ndimage.gaussian_filter` of
/// an 11×11 Dirac delta with sigma 5 (so the taps are SciPy's: a 41-tap Gaussian, truncate
/// 4.0, folded back into the 11×11 window by SciPy's default `reflect` boundary), and the blur
/// is `torch.nn.functional.conv2d(x, kern, padding=klen // 2)`: each channel convolved with
/// that kernel on its own, zero padding of 5. The kernel is separable, so it is the outer
/// product of the one-dimensional filter of a Dirac; its taps sum to 1.
public enum RISEBlur {
    /// RISE's kernel size (`klen`).
    public static let kernelSize = 11
    /// RISE's Gaussian standard deviation in pixels (`nsig`).
    public static let sigma = 5.0

    /// The 11×11 kernel, row-major, as float32 (RISE casts `gkern` to float32).
    public static let kernel: [Float] = {
        let line = diracResponse(length: kernelSize, sigma: sigma)
        return line.flatMap { a in line.map { b in Float(a * b) } }
    }()

    /// `scipy.ndimage.gaussian_filter1d` of a length-`length` Dirac at `length // 2`, with
    /// SciPy's defaults (truncate 4.0, `reflect` boundary: d c b a | a b c d | d c b a).
    static func diracResponse(length: Int, sigma: Double) -> [Double] {
        let radius = Int(4.0 * sigma + 0.5)
        var weights = (-radius...radius).map { Foundation.exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
        let total = weights.reduce(0, +)
        weights = weights.map { $0 / total }
        let centre = length / 2
        return (0..<length).map { output in
            var sum = 0.0
            for tap in -radius...radius where reflect(output + tap, length: length) == centre {
                sum += weights[tap + radius]
            }
            return sum
        }
    }

    /// SciPy's `reflect` extension of index `index` into `0..<length` (period 2·length).
    static func reflect(_ index: Int, length: Int) -> Int {
        let period = 2 * length
        let folded = ((index % period) + period) % period
        return folded < length ? folded : period - 1 - folded
    }

    /// `images` `[N, C, H, W]` blurred channel by channel with `kernel`, zero padding 5.
    public static func blurred(_ images: Tensor) -> Tensor {
        precondition(images.rank == 4, "images must be [N, C, H, W]")
        let (height, width) = (images.shape[2], images.shape[3])
        let planes = images.shape[0] * images.shape[1]
        let source = images.scalars
        let half = kernelSize / 2
        var output = [Float](repeating: 0, count: source.count)
        for plane in 0..<planes {
            let offset = plane * height * width
            for y in 0..<height {
                for x in 0..<width {
                    var sum: Float = 0
                    for ky in 0..<kernelSize {
                        let sy = y + ky - half
                        guard sy >= 0 && sy < height else { continue }
                        let row = offset + sy * width
                        for kx in 0..<kernelSize {
                            let sx = x + kx - half
                            guard sx >= 0 && sx < width else { continue }
                            sum += kernel[ky * kernelSize + kx] * source[row + sx]
                        }
                    }
                    output[offset + y * width + x] = sum
                }
            }
        }
        return Tensor(shape: images.shape, values: output)
    }
}
