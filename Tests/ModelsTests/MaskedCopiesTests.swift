@testable import ElucidateModels
import Elucidate
import Foundation
import TestSupport
import XCTest

/// `MaskedStemEvaluator`: the stem's output of `x ⊙ Σ_b c_b φ_b` as a sum of the stem's
/// responses to each `x ⊙ φ_b`, against the direct convolution of the masked copy.
final class MaskedCopiesTests: XCTestCase {
    /// A basis of masks with supports of different boxes (one touching each border, one
    /// empty, overlapping ones) and coefficients in [0, 1] (a normalised mask's), on an odd
    /// input size, for the ImageNet stem (7×7, stride 2) and the small one (3×3, stride 1).
    ///
    /// Error argument, for an output with kernel taps t (K = C·R·S of them): the direct path
    /// rounds the mask (ε |m_t|) and sums K products (γ_K Σ|w x m|); the evaluator sums K
    /// products per response (γ_K Σ_b |c_b| Σ|w x φ_b|) and then at most B responses
    /// (γ_B Σ_b |c_b R_b|). With S_t = Σ_b |c_b φ_b(t)| ≥ |m_t| and M = Σ_t |w_t x_t| S_t, the
    /// sums differ by at most (2γ_K + γ_B + 2ε) M; adding the bias b rounds each by at most
    /// ε (M + |b|), and the ReLU does not widen a difference.
    func testStemOutputsEqualTheDirectConvolutionWithinRounding() throws {
        for size in [(37, 42), (16, 16)] {
            for stem in [ResNetArchitecture.Stem.imagenet, .small] {
                var arch = ResNetArchitecture.named("resnet18")!
                arch.stem = stem
                let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 7))
                try check(network, height: size.0, width: size.1)
            }
        }
    }

    private func check(_ network: ResNet, height: Int, width: Int) throws {
        let channels = network.inputChannels
        let plane = height * width
        let row = DeterministicWeights.input(key: "masked_copies", shape: [1, channels, height, width])
        // Boxes [y0, y1) × [x0, x1) with positive values inside; one empty.
        let boxes = [(0, height / 2, 0, width / 2), (height / 3, height, width / 4, width),
                     (0, height, width - 3, width), (2, 5, 3, 9), (0, 0, 0, 0), (height - 1, height, 0, 1)]
        var basis = [Float](repeating: 0, count: boxes.count * plane)
        let fill = DeterministicWeights.values(key: "masked_copies_basis", count: basis.count, scale: 0.5, offset: 0.5)
        for (b, box) in boxes.enumerated() {
            for y in box.0..<box.1 { for x in box.2..<box.3 { basis[b * plane + y * width + x] = fill[b * plane + y * width + x] } }
        }
        let copies = 3
        let coefficients = DeterministicWeights.values(key: "masked_copies_c", count: copies * boxes.count, scale: 0.5, offset: 0.5)
        let planes = basis
        let maskBasis = MaskBasis(count: boxes.count, height: height, width: width) { Array(planes[($0 * plane)..<(($0 + 1) * plane)]) }
        let evaluator = try XCTUnwrap(MaskedStemEvaluator(network: network, row: row, basis: maskBasis, copies: 1_000_000))
        // No faster than convolving the copies: no evaluator.
        XCTAssertNil(try MaskedStemEvaluator(network: network, row: row, basis: maskBasis, copies: boxes.count))
        let summed = evaluator.stemOutputs(coefficients: Tensor(shape: [copies, boxes.count], values: coefficients))

        // The direct path, and Σ_t |w_t x_t| S_t in double.
        let stem = network.stem
        var masked = [Float](repeating: 0, count: copies * channels * plane)
        var magnitude = [Float](repeating: 0, count: copies * channels * plane)
        let x = row.scalars
        for copy in 0..<copies {
            for i in 0..<plane {
                var m = 0.0, s = 0.0
                for b in boxes.indices {
                    let c = Double(coefficients[copy * boxes.count + b]), phi = Double(basis[b * plane + i])
                    m += c * phi
                    s += abs(c * phi)
                }
                for ch in 0..<channels {
                    masked[(copy * channels + ch) * plane + i] = x[ch * plane + i] * Float(m)
                    magnitude[(copy * channels + ch) * plane + i] = abs(x[ch * plane + i]) * Float(s)
                }
            }
        }
        let direct = try stem(Tensor(shape: [copies, channels, height, width], values: masked))
        let absolute = Conv2d(weight: Tensor(shape: stem.weight.shape, values: stem.weight.scalars.map(abs)), bias: nil,
                              stride: stem.stride, padding: stem.padding, dilation: stem.dilation)
        let bound = try absolute(Tensor(shape: [copies, channels, height, width], values: magnitude)).scalars
        XCTAssertEqual(summed.shape, direct.shape)

        let eps = Double(Float.ulpOfOne) / 2
        func gamma(_ n: Int) -> Double { Double(n) * eps / (1 - Double(n) * eps) }
        let taps = channels * stem.kernelSize.h * stem.kernelSize.w
        // The bound's own float rounding (its products and sums) is a factor (1 + γ_{K+2}).
        let factor = (2 * gamma(taps) + gamma(boxes.count) + 2 * eps) * (1 + gamma(taps + 2))
        let (s, d) = (summed.scalars, direct.scalars)
        let outPlane = direct.shape[2] * direct.shape[3]
        var worst = 0.0
        for i in s.indices {
            let bias = Double(abs(stem.bias?.scalars[(i / outPlane) % stem.outChannels] ?? 0))
            let allowed = factor * Double(bound[i]) + 2 * eps * (Double(bound[i]) * (1 + factor) + bias)
            let error = Double(abs(s[i] - d[i]))
            worst = max(worst, allowed > 0 ? error / allowed : (error > 0 ? .infinity : 0))
            if error > allowed && ProcessInfo.processInfo.environment["DEBUG_MASKED"] != nil { print("i \(i) copy \(i / (outPlane * stem.outChannels)) ch \((i / outPlane) % stem.outChannels) y \((i % outPlane) / direct.shape[3]) x \(i % direct.shape[3]) got \(s[i]) want \(d[i])") }
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(network.architecture) \(height)×\(width): error / bound")
        print("masked stem \(network.architecture.stem) \(height)×\(width): worst error / bound \(worst)")
    }
}
