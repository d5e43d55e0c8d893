import Elucidate
@testable import ElucidateNN
import CKernels
import TestSupport
import XCTest

/// `Conv2d.inputGradient`: the Winograd path (3×3 stride-1 layers) and the im2col path with
/// its products and scatter split over Elucidate's threads, against a double-precision
/// direct backward, at every SIMD level this CPU has. The Winograd bound is a worst case (it
/// catches wiring errors, which are of the size of the result); the transforms' own accuracy
/// is held to a direct convolution in CKernelsTests' WinogradTests, and the Winograd input
/// gradient is shown below to be exactly the Winograd forward of the transposed convolution.
final class ConvolutionGradientTests: XCTestCase {
    struct Case {
        let n, c, h, w, k: Int
        let r: Int
        var stride = 1
        var padding = 1
    }

    /// Shapes with partial tiles, every padding the transposed convolution allows (2 − P),
    /// chunks, and layers on the im2col path (strided, 1×1, 7×7).
    let cases = [
        Case(n: 2, c: 16, h: 9, w: 11, k: 24, r: 3),
        Case(n: 1, c: 8, h: 14, w: 14, k: 8, r: 3, padding: 0),
        Case(n: 4, c: 12, h: 7, w: 7, k: 16, r: 3, padding: 2),
        Case(n: 1, c: 32, h: 20, w: 17, k: 8, r: 3),
        Case(n: 2, c: 8, h: 9, w: 11, k: 16, r: 3, stride: 2),
        Case(n: 2, c: 16, h: 6, w: 5, k: 8, r: 1, padding: 0),
        Case(n: 1, c: 3, h: 19, w: 16, k: 8, r: 7, stride: 2, padding: 3),
    ]

    func layer(_ t: Case, _ random: inout SeededGenerator) -> Conv2d {
        Conv2d(weight: Tensor(shape: [t.k, t.c, t.r, t.r], values: random.floats(t.k * t.c * t.r * t.r)), bias: nil,
               stride: t.stride, padding: t.padding)
    }

    /// dx by the definition, in double: dx[c, y, x] = Σ_k,i,j w[k, c, i, j] · dy[k, oy, ox] where
    /// y = oy·stride − P + i. Also Σ |w|·|dy| over the same terms, the scale of float error.
    func reference(_ t: Case, weight: [Float], dy: [Float], outH: Int, outW: Int) -> (exact: [Double], magnitude: [Double]) {
        var exact = [Double](repeating: 0, count: t.n * t.c * t.h * t.w)
        var magnitude = exact
        for image in 0..<t.n {
            for k in 0..<t.k {
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        let g = Double(dy[((image * t.k + k) * outH + oy) * outW + ox])
                        for c in 0..<t.c {
                            for i in 0..<t.r {
                                let y = oy * t.stride - t.padding + i
                                guard y >= 0 && y < t.h else { continue }
                                for j in 0..<t.r {
                                    let x = ox * t.stride - t.padding + j
                                    guard x >= 0 && x < t.w else { continue }
                                    let wv = Double(weight[((k * t.c + c) * t.r + i) * t.r + j])
                                    let index = ((image * t.c + c) * t.h + y) * t.w + x
                                    exact[index] += wv * g
                                    magnitude[index] += abs(wv * g)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (exact, magnitude)
    }

    func checkAgainstReference(at level: InstructionSet) throws {
        try atInstructionSet(level) {
            var random = SeededGenerator(seed: 11)
            for t in cases {
                let conv = layer(t, &random)
                let outShape = try conv.outputShape(for: [t.n, t.c, t.h, t.w])
                let dy = Tensor(shape: outShape, values: random.floats(outShape.reduce(1, *)))
                let (exact, magnitude) = reference(t, weight: conv.weight.scalars, dy: dy.scalars,
                                                   outH: outShape[2], outW: outShape[3])
                let winograd = conv.usesWinograd
                // Both product paths: OpenBLAS and the packed products (which a debug build
                // leaves off by default), so the bound holds for each.
                for (enabled, packed) in [(true, false), (false, false), (true, true), (false, true)] {
                    let previous = Runtime.winogradEnabled
                    Runtime.winogradEnabled = enabled
                    Runtime.packedProductsOverride = packed
                    defer {
                        Runtime.winogradEnabled = previous
                        Runtime.packedProductsOverride = nil
                    }
                    let dx = try conv.inputGradient(dy, inputShape: [t.n, t.c, t.h, t.w]).scalars
                    // The im2col path sums K·R·S products per element (then col2im adds the
                    // R·S overlapping columns), so its error is at most γ_n · Σ|w||dy| with
                    // n = K·R·S + R·S and γ_n = n·u/(1 − n·u) (Higham, Thm 3.1), u = 2⁻²⁴.
                    // Winograd's products run over transformed values whose magnitudes the
                    // transforms can enlarge: F(4×4, 3×3)'s input, weight and output matrices
                    // have ∞-norms 10, 1 and 18, so (in 2-D) its terms are bounded by
                    // 10²·1²·18² = 32 400 times the direct ones, over sums of length K plus
                    // the transforms' 6 + 6 + 6 additions. F(5×5)'s have 50, 0.31 and 35.1
                    // (298 541), F(6×6)'s 50, 0.62 and 67.1 (4 353 019), over 7 + 7 + 7 and
                    // 8 + 8 + 8 additions: the tile the transposed convolution gets decides.
                    let u = Double(Float.ulpOfOne) / 2
                    var transposed = ek_conv2d_params(
                        n: Int64(t.n), c: Int64(t.k), h: Int64(dy.shape[2]), w: Int64(dy.shape[3]), k: Int64(t.c),
                        r: 3, s: 3, stride_h: 1, stride_w: 1, pad_h: Int64(2 - t.padding), pad_w: Int64(2 - t.padding),
                        dilation_h: 1, dilation_w: 1, activation: EK_ACT_NONE, ith: 0, nth: 1, winograd_tile: 0)
                    let tile = Int(ek_winograd_tile_size(&transposed))
                    let length = enabled && winograd ? Double(t.k + 3 * (tile + 2)) : Double(t.k * t.r * t.r + t.r * t.r)
                    let growth = enabled && winograd ? [4: 32_400.0, 5: 298_541, 6: 4_353_019][tile]! : 1.0
                    let gamma = length * u / (1 - length * u) * growth
                    for i in dx.indices {
                        let bound = gamma * magnitude[i] + Double(Float.leastNormalMagnitude)
                        if abs(Double(dx[i]) - exact[i]) > bound {
                            XCTFail("\(t) winograd \(enabled) packed \(packed) at \(level): element \(i) \(dx[i]) vs \(exact[i]), bound \(bound)")
                            break
                        }
                    }
                }
            }
        }
    }

    func testInputGradientMatchesDoubleReferenceScalar() throws { try checkAgainstReference(at: .scalar) }
    func testInputGradientMatchesDoubleReferenceAVX2() throws { try checkAgainstReference(at: .avx2) }
    func testInputGradientMatchesDoubleReferenceAVX512() throws { try checkAgainstReference(at: .avx512) }

    /// The forward (bias and ReLU fused) through the packed products against a double-precision
    /// direct convolution, with the bounds of `checkAgainstReference` (sums of C·R·S terms, or
    /// Winograd's C + 18 with its growth of 32 400); a 3×3 layer with enough tiles for the fused
    /// path, and a batch through `batched`.
    func testForwardThroughPackedProductsMatchesDoubleReference() throws {
        var random = SeededGenerator(seed: 13)
        Runtime.packedProductsOverride = true
        defer { Runtime.packedProductsOverride = nil }
        for t in cases + [Case(n: 2, c: 8, h: 80, w: 80, k: 8, r: 3)] {
            let plain = layer(t, &random)
            let bias = Tensor(shape: [t.k], values: random.floats(t.k))
            var conv = Conv2d(weight: plain.weight, bias: bias, stride: t.stride, padding: t.padding)
            conv.activation = .relu
            let x = Tensor(shape: [t.n, t.c, t.h, t.w], values: random.floats(t.n * t.c * t.h * t.w))
            let outShape = try conv.outputShape(for: x.shape)
            let (outH, outW) = (outShape[2], outShape[3])
            let w = conv.weight.scalars, xs = x.scalars, b = bias.scalars
            let u = Double(Float.ulpOfOne) / 2
            let winograd = conv.usesWinograd
            let length = winograd ? Double(t.c + 18) : Double(t.c * t.r * t.r + 1)
            let gamma = length * u / (1 - length * u) * (winograd ? 32_400.0 : 1.0)
            for output in [try conv(x), try conv.batched(x)] {
                let y = output.scalars
                for image in 0..<t.n {
                    for k in 0..<t.k {
                        for oy in 0..<outH {
                            for ox in 0..<outW {
                                var exact = Double(b[k]), magnitude = abs(Double(b[k]))
                                for c in 0..<t.c {
                                    for i in 0..<t.r {
                                        let yy = oy * t.stride - t.padding + i
                                        guard yy >= 0 && yy < t.h else { continue }
                                        for j in 0..<t.r {
                                            let xx = ox * t.stride - t.padding + j
                                            guard xx >= 0 && xx < t.w else { continue }
                                            let term = Double(w[((k * t.c + c) * t.r + i) * t.r + j])
                                                * Double(xs[((image * t.c + c) * t.h + yy) * t.w + xx])
                                            exact += term
                                            magnitude += abs(term)
                                        }
                                    }
                                }
                                let index = ((image * t.k + k) * outH + oy) * outW + ox
                                let bound = gamma * magnitude + Double(Float.leastNormalMagnitude)
                                if abs(Double(y[index]) - max(0, exact)) > bound {
                                    XCTFail("\(t): output \(index) \(y[index]) vs \(max(0, exact)), bound \(bound)")
                                    return
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The Winograd input gradient is, bit for bit, the Winograd forward of the transposed and
    /// flipped convolution (padding R − 1 − P): the wiring of channels, taps and padding.
    func testWinogradInputGradientIsTheTransposedConvolution() throws {
        var random = SeededGenerator(seed: 12)
        for t in cases where t.r == 3 && t.stride == 1 {
            let conv = layer(t, &random)
            XCTAssertTrue(conv.usesWinograd, "\(t)")
            let outShape = try conv.outputShape(for: [t.n, t.c, t.h, t.w])
            let dy = Tensor(shape: outShape, values: random.floats(outShape.reduce(1, *)))
            var flipped = [Float](repeating: 0, count: t.c * t.k * 9)
            let w = conv.weight.scalars
            for k in 0..<t.k {
                for c in 0..<t.c {
                    for tap in 0..<9 { flipped[(c * t.k + k) * 9 + tap] = w[(k * t.c + c) * 9 + 8 - tap] }
                }
            }
            let transposed = Conv2d(weight: Tensor(shape: [t.c, t.k, 3, 3], values: flipped), bias: nil,
                                    padding: 2 - t.padding)
            let viaForward = try transposed(dy)
            let gradient = try conv.inputGradient(dy, inputShape: [t.n, t.c, t.h, t.w])
            XCTAssertEqual(viaForward.shape, gradient.shape)
            XCTAssertEqual(viaForward.scalars.map(\.bitPattern), gradient.scalars.map(\.bitPattern), "\(t)")
        }
    }
}
