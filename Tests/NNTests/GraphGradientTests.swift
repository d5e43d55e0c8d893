import Elucidate
@testable import ElucidateModels
@testable import ElucidateNN
import Foundation
import TestSupport
import XCTest

/// Float32's unit roundoff: a correctly rounded operation errs by at most u relative.
private let u = 0x1p-24
/// Double's.
private let uDouble = 0x1p-53

/// γ(n) = n·u / (1 − 2n·u): with it, |fl(Σ) − Σ| ≤ γ(n)·Σ|terms| for any order of n
/// roundings (Higham, Accuracy and Stability, §3.1), and the extra n·u covers computing the
/// magnitude Σ|terms| itself in float32.
private func gamma(_ n: Int) -> Double { Double(n) * u / (1 - 2 * Double(n) * u) }

private typealias Build = (Graph, Variable) throws(ElucidateError) -> Variable

/// One differentiable op under test and the facts its error bounds need.
///
/// The check compares the graph's float32 gradient of L(x) = Σ w·f(x) with central
/// differences (L(x + h·e_i) − L(x − h·e_i)) / 2h of the float32 forward, L summed in
/// Double. Their difference is bounded, element by element, by the sum of
/// - the forward's rounding in the difference: Σ over the outputs that change |w_j|·
///   (err_j(x + h) + err_j(x − h)), with err_j ≤ γ(forwardRoundings)·M_j, over the actual
///   step (outputs that do not depend on x_i are computed identically at both points and
///   cancel exactly), plus Double's rounding of the two sums;
/// - truncation: (h²/6)·|∂³L/∂x_i³|, zero for linear, piecewise-linear (no kink in the
///   segment, checked) and quadratic functions;
/// - the backward's rounding: γ(backwardRoundings)·G_i, where G is the gradient with every
///   weight and w replaced by its absolute value.
/// The tolerance is exactly that sum, computed from the values; a check whose bound is not
/// far below the gradient's own size would prove nothing, so that is asserted too.
private struct OpUnderTest {
    var name: String
    var shape: [Int]
    var build: Build
    /// Float32 roundings behind each output, and M with |fl(f) − f| ≤ γ(n)·M: `magnitude`
    /// evaluated at |x| (the op with absolute parameters), or |f(x)| when nil.
    var forwardRoundings = 0
    var magnitude: Build?
    /// Float32 roundings of the backward, and G = ∇(Σ|w|·absolute) at x (at |x| when
    /// `absoluteAtMagnitudeInput`), or `customScale(x, w)`.
    var backwardRoundings = 0
    var absolute: Build?
    var absoluteAtMagnitudeInput = false
    var customScale: ((Tensor, Tensor) -> [Double])?
    /// A bound on |∂³L/∂x_i³| / max|w|; 0 for functions whose central difference is exact.
    var thirdDerivative = 0.0
    /// ReLU or max: a probe whose segment [x − h, x + h] crosses a kink (the one-sided
    /// differences disagree) is replaced by another.
    var hasKinks = false
    /// Half the step. Linear ops take a large one: their central difference is exact for every
    /// h, and the forward's rounding is divided by 2h (only the terms of x_i grow with h, so the
    /// bound tends to γ·G); quadratic ones about 1, where (|x| + h)²/h is smallest.
    var h: Double
}

private extension Tensor {
    var absolute: Tensor { Tensor(shape: shape, values: scalars.map(abs)) }
}

/// The graph's input gradients against central finite differences, op by op and through a
/// whole ResNet, each at every instruction-set level (a level this CPU lacks is a skip).
final class GraphGradientTests: XCTestCase {
    var random = SeededGenerator(seed: 42)

    override func tearDown() {
        Runtime.winogradEnabled = true
        super.tearDown()
    }

    // MARK: - Op-level checks

    /// `op` at `probes` random elements of a random input (replacing probes whose segment crosses a
    /// kink), with the tolerance derived in `OpUnderTest`.
    private func check(_ op: OpUnderTest, probes: Int = 16, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = Tensor(shape: op.shape, values: random.floats(op.shape.reduce(1, *)))
        let graph = Graph()
        let input = graph.input(x)
        let output = try op.build(graph, input)
        let w = Tensor(shape: output.shape, values: random.floats(output.value.count))
        let gradient = try graph.gradients(of: output, seed: w, for: [input])[0].scalars

        let scale: [Double]
        if let custom = op.customScale {
            scale = custom(x, w)
        } else {
            let g = Graph()
            let at = g.input(op.absoluteAtMagnitudeInput ? x.absolute : x)
            let out = try (op.absolute ?? op.build)(g, at)
            scale = try g.gradients(of: out, seed: w.absolute, for: [at])[0].scalars.map(Double.init)
        }
        let gradientSize = gradient.map { Double(abs($0)) }.max() ?? 0
        XCTAssertGreaterThan(gradientSize, 0, "\(op.name): a zero gradient checks nothing", file: file, line: line)
        let weights = w.scalars.map(Double.init)
        let maxWeight = weights.map(abs).max() ?? 0

        // The forward used by the differences runs with Winograd off, so that the classical
        // bound γ(C·R·S + 1)·Σ|terms| holds for every convolution (the layers here have too
        // few channels for Winograd anyway; the whole-network test covers it).
        func forward(_ value: Tensor) throws -> (f: [Float], m: [Double]) {
            Runtime.winogradEnabled = false
            defer { Runtime.winogradEnabled = true }
            let g = Graph()
            let f = try op.build(g, g.input(value, requiresGradient: false)).value.scalars
            guard op.forwardRoundings > 0 else { return (f, []) }
            if let magnitude = op.magnitude {
                let h = Graph()
                return (f, try magnitude(h, h.input(value.absolute, requiresGradient: false)).value.scalars.map(Double.init))
            }
            return (f, f.map { Double(abs($0)) })
        }
        func loss(_ f: [Float]) -> Double { zip(f, weights).reduce(0.0) { $0 + Double($1.0) * $1.1 } }
        /// Double's error in one such sum: n + 1 roundings of terms at most Σ|w·f|.
        func accumulationError(_ f: [Float]) -> Double {
            Double(f.count + 1) * uDouble * zip(f, weights).reduce(0.0) { $0 + abs(Double($1.0) * $1.1) }
        }

        var checked = 0, replaced = 0, worstRatio = 0.0
        var tried = Set<Int>()
        let (f0, _) = try forward(x)
        while checked < min(probes, x.count - replaced), tried.count < x.count {
            let i = Int.random(in: 0..<x.count, using: &random)
            guard tried.insert(i).inserted else { continue }
            let xi = Double(x.scalars[i])
            var plus = x, minus = x
            plus.withUnsafeMutableBufferPointer { $0[i] = Float(xi + op.h) }
            minus.withUnsafeMutableBufferPointer { $0[i] = Float(xi - op.h) }
            let (up, down) = (Double(plus.scalars[i]), Double(minus.scalars[i]))  // the steps actually taken
            let (fp, mp) = try forward(plus), (fm, mm) = try forward(minus)
            let (lp, lm) = (loss(fp), loss(fm))
            if op.hasKinks {
                // Both halves of a segment without a kink have the same slope, up to Double's
                // rounding of the three sums (the forward of ReLU and max is exact).
                let l0 = loss(f0)
                let right = (lp - l0) / (up - xi), left = (l0 - lm) / (xi - down)
                let slack = (accumulationError(fp) + accumulationError(f0)) / (up - xi)
                    + (accumulationError(f0) + accumulationError(fm)) / (xi - down)
                if abs(right - left) > slack { replaced += 1; continue }
            }
            let step = up - down
            let numeric = (lp - lm) / step

            var forwardError = accumulationError(fp) + accumulationError(fm)
            if op.forwardRoundings > 0 {
                for j in fp.indices where fp[j].bitPattern != fm[j].bitPattern {
                    forwardError += abs(weights[j]) * gamma(op.forwardRoundings) * (mp[j] + mm[j])
                }
            }
            let truncation = op.thirdDerivative * maxWeight * (step / 2) * (step / 2) / 6
            let tolerance = forwardError / step + truncation + gamma(op.backwardRoundings) * scale[i]
            let analytic = Double(gradient[i])
            XCTAssertLessThanOrEqual(abs(analytic - numeric), tolerance,
                                     "\(op.name) element \(i): graph \(analytic), differences \(numeric)", file: file, line: line)
            worstRatio = max(worstRatio, tolerance / gradientSize)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, min(probes, x.count / 2), "\(op.name): too many probes crossed a kink",
                                    file: file, line: line)
        // The bound must be far below the gradient itself, or the check could not tell a
        // wrong gradient from rounding: any element off by 0.1 % of the gradient's size fails.
        XCTAssertLessThan(worstRatio, 1e-3, "\(op.name): the error bound is too loose to check anything",
                          file: file, line: line)
    }

    private func conv(_ k: Int, _ c: Int, _ r: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) -> Conv2d {
        Conv2d(weight: Tensor(shape: [k, c, r, r], values: random.floats(k * c * r * r)),
               bias: Tensor(shape: [k], values: random.floats(k)), stride: stride, padding: padding, dilation: dilation)
    }

    private func convolutionChecks() throws {
        for layer in [conv(4, 3, 3, padding: 1), conv(5, 3, 3, stride: 2, padding: 1), conv(4, 3, 1),
                      conv(3, 3, 1, stride: 2), conv(2, 3, 3, padding: 2, dilation: 2), conv(4, 3, 7, stride: 2, padding: 3)] {
            let absolute = Conv2d(weight: layer.weight.absolute, bias: layer.bias?.absolute, stride: layer.stride,
                                  padding: layer.padding, dilation: layer.dilation)
            let taps = layer.kernelSize.h * layer.kernelSize.w
            // Forward: C·R·S products and the bias. Backward: a GEMM over the K output channels,
            // then col2im adds at most R·S taps per input element.
            try check(OpUnderTest(
                name: "conv \(layer.weight.shape) stride \(layer.stride) dilation \(layer.dilation)", shape: [2, 3, 9, 7],
                build: { g, x throws(ElucidateError) in try g.conv2d(x, layer) },
                forwardRoundings: layer.inChannels * taps + 1,
                magnitude: { g, x throws(ElucidateError) in try g.conv2d(x, absolute) },
                backwardRoundings: layer.outChannels + taps,
                absolute: { g, x throws(ElucidateError) in try g.conv2d(x, absolute) }, h: 16))
        }
    }

    private func poolLinearAndShapeChecks() throws {
        let maxPool = Pool2d.maxPool(kernelSize: 3, stride: 2, padding: 1)
        // Max selects (exact); 3×3 windows at stride 2 overlap, so an element's gradient adds
        // up to 4 windows'.
        try check(OpUnderTest(name: "max pool", shape: [2, 3, 9, 8],
                              build: { g, x throws(ElucidateError) in try g.pool(x, maxPool) },
                              backwardRoundings: 4, hasKinks: true, h: 1e-3))
        // Average: 9 additions and a division; backward a division and up to 4 windows.
        let average = Pool2d(.average(countIncludePad: true), kernelSize: 3, stride: 2, padding: 1)
        try check(OpUnderTest(name: "average pool", shape: [2, 3, 9, 8],
                              build: { g, x throws(ElucidateError) in try g.pool(x, average) },
                              forwardRoundings: 10, magnitude: { g, x throws(ElucidateError) in try g.pool(x, average) },
                              backwardRoundings: 5, h: 16))
        // Adaptive 7×5 → 3×3: bins of at most 3×2 elements, each element in at most 2×2 bins.
        let adaptiveAverage = AdaptivePool2d(.average, outputSize: 3)
        try check(OpUnderTest(name: "adaptive average pool", shape: [2, 3, 7, 5],
                              build: { g, x throws(ElucidateError) in try g.adaptivePool(x, adaptiveAverage) },
                              forwardRoundings: 7,
                              magnitude: { g, x throws(ElucidateError) in try g.adaptivePool(x, adaptiveAverage) },
                              backwardRoundings: 5, h: 16))
        // Adaptive 7×5 → 2×2: bins overlap, each element in at most 2×2 of them.
        let adaptiveMax = AdaptivePool2d(.max, outputSize: 2)
        try check(OpUnderTest(name: "adaptive max pool", shape: [2, 3, 7, 5],
                              build: { g, x throws(ElucidateError) in try g.adaptivePool(x, adaptiveMax) },
                              backwardRoundings: 4, hasKinks: true, h: 1e-3))
        // Linear 6 → 4: 6 products and the bias; backward a GEMM over 4 outputs.
        let linear = Linear(weight: Tensor(shape: [4, 6], values: random.floats(24)), bias: Tensor(shape: [4], values: random.floats(4)))
        let absoluteLinear = Linear(weight: linear.weight.absolute, bias: linear.bias?.absolute)
        try check(OpUnderTest(name: "linear", shape: [3, 6],
                              build: { g, x throws(ElucidateError) in try g.linear(x, linear) },
                              forwardRoundings: 7, magnitude: { g, x throws(ElucidateError) in try g.linear(x, absoluteLinear) },
                              backwardRoundings: 4, absolute: { g, x throws(ElucidateError) in try g.linear(x, absoluteLinear) },
                              h: 16))
        // Softmax of 6 columns, x in [−1, 1): relative to y, x − max errs by 2u, exp by 2 ulp,
        // the sum by 6 roundings, the reciprocal and product by one each (12). The backward
        // y·(dy − Σ dy·y) rounds 6 + 2 times relative to G = y·(|w| + Σ|w|·y), and uses the
        // forward's y, off by 12 roundings, in two places: 8 + 2·12 = 32. Along one
        // coordinate each s_j is a logistic (times a constant whose sum over j ≠ i is at most 1)
        // whose third derivative is at most 1/8: |∂³L/∂x_i³| ≤ (1/8 + 1/8)·max|w|.
        try check(OpUnderTest(name: "softmax", shape: [3, 6], build: { g, x in g.softmax(x) },
                              forwardRoundings: 12, backwardRoundings: 32,
                              customScale: { x, w in
                                  let y = x.softmax().scalars.map(Double.init), dy = w.scalars.map { abs(Double($0)) }
                                  return (0..<y.count).map { i in
                                      let row = (i / 6) * 6
                                      let dot = (row..<(row + 6)).reduce(0.0) { $0 + dy[$1] * y[$1] }
                                      return y[i] * (dy[i] + dot)
                                  }
                              }, thirdDerivative: 0.25, h: 1e-2))
        // A reshape moves values: exact both ways.
        try check(OpUnderTest(name: "reshape", shape: [2, 3, 2, 2], build: { g, x in g.reshape(x, [2, 12]) }, h: 16))
        // [x, x·x, x]: one rounding (x·x) per output, relative to |f|; quadratic, so the central
        // difference is exact. Backward: the two products w·x, then three additions where x's
        // four uses meet; G = |w₁| + |w₃| + 2|x|·|w₂| is the gradient at |x| with |w|.
        try check(OpUnderTest(name: "concatenate", shape: [2, 3, 4, 4],
                              build: { g, x in g.concatenateChannels([x, g.multiply(x, x), x]) },
                              forwardRoundings: 1, backwardRoundings: 4, absoluteAtMagnitudeInput: true, h: 1))
        // x + x·x: two roundings relative to |x| + x² (the op at |x|); backward two products
        // and two additions.
        try check(OpUnderTest(name: "add", shape: [2, 3, 4, 4], build: { g, x in g.add(x, g.multiply(x, x)) },
                              forwardRoundings: 2, magnitude: { g, x in g.add(x, g.multiply(x, x)) },
                              backwardRoundings: 3, absoluteAtMagnitudeInput: true, h: 1))
    }

    private func batchNormAndReLUChecks() throws {
        let norm = BatchNorm2d(weight: Tensor(shape: [3], values: [0.5, -1, 2]), bias: Tensor(shape: [3], values: [0.1, 0.2, 0.3]),
                               runningMean: Tensor(shape: [3], values: [0.1, -0.2, 0]), runningVar: Tensor(shape: [3], values: [0.5, 1, 2]))
        // y = fma(x, scale, shift) with scale = γ/√(var + ε) and shift = β − mean·scale (3 and
        // 2 roundings): 5 roundings relative to (|x| + |mean|)·|scale| + |β|, which is the norm
        // with |γ|, |β| and −|mean| at |x|. Backward dy·scale: 4 roundings relative to |dy·scale|.
        let absolute = BatchNorm2d(weight: norm.weight?.absolute, bias: norm.bias?.absolute,
                                   runningMean: Tensor(shape: [3], values: norm.runningMean.scalars.map { -abs($0) }),
                                   runningVar: norm.runningVar)
        try check(OpUnderTest(name: "batch norm", shape: [2, 3, 4, 5],
                              build: { g, x throws(ElucidateError) in try g.batchNorm(x, norm) },
                              forwardRoundings: 5, magnitude: { g, x throws(ElucidateError) in try g.batchNorm(x, absolute) },
                              backwardRoundings: 4, absolute: { g, x throws(ElucidateError) in try g.batchNorm(x, absolute) },
                              h: 16))
        // ReLU: exact forward and backward; probes within h of the kink are replaced.
        try check(OpUnderTest(name: "relu", shape: [2, 3, 4, 5], build: { g, x in g.relu(x) }, hasKinks: true, h: 1e-3))
    }

    func testConvolutionsScalar() throws { try atInstructionSet(.scalar) { try convolutionChecks() } }
    func testConvolutionsAVX2() throws { try atInstructionSet(.avx2) { try convolutionChecks() } }
    func testConvolutionsAVX512() throws { try atInstructionSet(.avx512) { try convolutionChecks() } }

    func testPoolsLinearAndShapesScalar() throws { try atInstructionSet(.scalar) { try poolLinearAndShapeChecks() } }
    func testPoolsLinearAndShapesAVX2() throws { try atInstructionSet(.avx2) { try poolLinearAndShapeChecks() } }
    func testPoolsLinearAndShapesAVX512() throws { try atInstructionSet(.avx512) { try poolLinearAndShapeChecks() } }

    func testBatchNormAndReLUScalar() throws { try atInstructionSet(.scalar) { try batchNormAndReLUChecks() } }
    func testBatchNormAndReLUAVX2() throws { try atInstructionSet(.avx2) { try batchNormAndReLUChecks() } }
    func testBatchNormAndReLUAVX512() throws { try atInstructionSet(.avx512) { try batchNormAndReLUChecks() } }

    // MARK: - Parameter gradients

    /// Named layers get weight and bias gradients (checked by finite differences); unnamed
    /// ones, the default, get none.
    private func parameterGradientChecks() throws {
        var random = SeededGenerator(seed: 7)
        let x = Tensor(shape: [2, 3, 6, 5], values: random.floats(180))
        let layer = Conv2d(weight: Tensor(shape: [4, 3, 3, 3], values: random.floats(108)),
                           bias: Tensor(shape: [4], values: random.floats(4)), stride: 2, padding: 1)
        let head = Linear(weight: Tensor(shape: [2, 4 * 3 * 3], values: random.floats(72)), bias: Tensor(shape: [2], values: random.floats(2)))
        let seed = Tensor(shape: [2, 2], values: random.floats(4))
        func loss(_ input: Tensor, _ convLayer: Conv2d, _ linear: Linear, _ seed: Tensor, names: Bool) throws -> (Double, Graph) {
            let graph = Graph()
            let hidden = try graph.conv2d(graph.input(input, requiresGradient: false), convLayer, parameterName: names ? "conv" : nil)
            let out = try graph.linear(graph.reshape(hidden, [2, 36]), linear, parameterName: names ? "fc" : nil)
            let value = zip(out.value.scalars, seed.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            _ = try graph.gradients(of: out, seed: seed, for: [])
            return (value, graph)
        }
        let (_, unnamed) = try loss(x, layer, head, seed, names: false)
        XCTAssertTrue(unnamed.parameterGradients.isEmpty)
        let (_, named) = try loss(x, layer, head, seed, names: true)
        XCTAssertEqual(Set(named.parameterGradients.keys), ["conv.weight", "conv.bias", "fc.weight", "fc.bias"])

        // Error bounds from the same network with every value replaced by its absolute value:
        // its loss bounds Σ|terms| of the forward, its parameter gradients those of the
        // backward. Forward: the stride-2 convolution sums 27 products and the bias (28
        // roundings), the linear layer 36 and its bias (37), Double's sum 2 more: 67. Backward:
        // a weight gradient sums 18 products (2 images × 3×3 positions) of dy, itself a 2-term
        // product, with activations carrying the forward's 67: at most 67 + 18 + 2 + 1 = 88.
        func absolute(_ convLayer: Conv2d, _ linear: Linear) -> (Conv2d, Linear) {
            (Conv2d(weight: convLayer.weight.absolute, bias: convLayer.bias?.absolute, stride: 2, padding: 1),
             Linear(weight: linear.weight.absolute, bias: linear.bias?.absolute))
        }
        let (absoluteConv, absoluteHead) = absolute(layer, head)
        let (_, absoluteGraph) = try loss(x.absolute, absoluteConv, absoluteHead, seed.absolute, names: true)
        // L is affine in each single parameter (no activation), so the central difference is
        // exact for any step; a large one (h = 16) divides the forward's rounding by 2h, and
        // only the perturbed parameter's terms grow with it.
        let h = 16.0
        for (key, index) in [("conv.weight", 5), ("conv.weight", 77), ("conv.bias", 2), ("fc.weight", 40), ("fc.bias", 1)] {
            /// The loss with the parameter set to `value`, and the bound on its rounding error.
            func perturbed(_ value: Double) throws -> (loss: Double, error: Double, step: Double) {
                var convLayer = layer, linear = head
                var actual = 0.0
                func set(_ tensor: Tensor) -> Tensor {
                    var t = tensor
                    t.withUnsafeMutableBufferPointer { $0[index] = Float(value); actual = Double($0[index]) }
                    return t
                }
                switch key {
                case "conv.weight": convLayer = Conv2d(weight: set(layer.weight), bias: layer.bias, stride: 2, padding: 1)
                case "conv.bias": convLayer = Conv2d(weight: layer.weight, bias: set(layer.bias!), stride: 2, padding: 1)
                case "fc.weight": linear = Linear(weight: set(head.weight), bias: head.bias)
                default: linear = Linear(weight: head.weight, bias: set(head.bias!))
                }
                let (absConv, absHead) = absolute(convLayer, linear)
                let magnitude = try loss(x.absolute, absConv, absHead, seed.absolute, names: false).0
                return (try loss(x, convLayer, linear, seed, names: false).0, gamma(67) * magnitude, actual)
            }
            let original = Double(key.hasPrefix("conv") ? (key == "conv.weight" ? layer.weight : layer.bias!).scalars[index]
                                                        : (key == "fc.weight" ? head.weight : head.bias!).scalars[index])
            let plus = try perturbed(original + h), minus = try perturbed(original - h)
            let numeric = (plus.loss - minus.loss) / (plus.step - minus.step)
            let analytic = Double(try XCTUnwrap(named.parameterGradients[key]).scalars[index])
            let scale = Double(try XCTUnwrap(absoluteGraph.parameterGradients[key]).scalars[index])
            let tolerance = (plus.error + minus.error) / (plus.step - minus.step) + gamma(88) * scale
            XCTAssertEqual(analytic, numeric, accuracy: tolerance, "\(key)[\(index)]")
            // Against the size of the tensor's gradient (a bias gradient, a sum over positions,
            // may itself cancel to near zero).
            let size = try XCTUnwrap(named.parameterGradients[key]).scalars.map { Double(abs($0)) }.max() ?? 0
            XCTAssertLessThan(tolerance, 1e-3 * size, "\(key)[\(index)]: the bound checks nothing")
        }
    }

    func testParameterGradientsOnlyWhenAskedScalar() throws { try atInstructionSet(.scalar) { try parameterGradientChecks() } }
    func testParameterGradientsOnlyWhenAskedAVX2() throws { try atInstructionSet(.avx2) { try parameterGradientChecks() } }
    func testParameterGradientsOnlyWhenAskedAVX512() throws { try atInstructionSet(.avx512) { try parameterGradientChecks() } }

    // MARK: - Whole network

    /// The graph's input gradient of Σ w·logits through a whole ResNet (BasicBlocks 1-1-1-1,
    /// ImageNet stem, 4 images of 24×20 — enough output tiles for Winograd to take layer1) at
    /// the current level, with Winograd on or off, at every input element, against the exact
    /// gradient computed in Double (`ReferenceResNet`, itself checked by central differences
    /// in `testDoubleReferenceGradientAgreesWithFiniteDifferences`).
    ///
    /// Why this holds on every CPU for the right reason. The network is piecewise linear, so
    /// its gradient is that of the linear piece the forward lies on, named by the activation
    /// pattern. A float32 forward may legitimately put a ReLU whose pre-activation lies within
    /// its rounding of zero on the other side (or take the other of two max-pool values that
    /// close), and its backward then differentiates that neighbouring piece. So:
    /// 1. the float32 forward at this level is run (the layer calls the graph records) and its
    ///    pattern read off; it may differ from the Double forward's only at units whose Double
    ///    pre-activation is within the forward's rounding bound of zero, and everywhere else
    ///    its values must be within that bound of the Double ones;
    /// 2. the graph's gradient is compared with the exact gradient of the piece the float32
    ///    forward chose, within the backward's rounding bound.
    /// The bounds are `likelyBound`'s λ·u·√n·S: n roundings, each of a term at most the scale
    /// S, with n counted along the longest path by the reference — C·R·S products per
    /// convolution, 5 roundings per folded batch norm, the residual sums (forward); the
    /// K-channel GEMM and col2im's R·S taps, the fold's 4 roundings per weight, max-pool
    /// overlaps, residual sums (backward); a Winograd layer as (channels + 18)·31.4² (see
    /// `ReferenceResNet.winogradGrowth`). The worst case n·u·S is useless for a network this
    /// deep (elementwise bounds through |W| grow ~30-fold per layer), and a √n model is what
    /// rounding does in practice (Higham & Mary 2019).
    private func wholeResNetCheck(winograd: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try WholeResNetCase.shared.get()
        Runtime.winogradEnabled = winograd
        defer { Runtime.winogradEnabled = true }
        if winograd {
            // Winograd does take layer1's convolutions here, forward and backward.
            let conv = c.network.stages[0][0].convolutions[0]
            XCTAssertNotNil(conv.winogradTiles(for: [WholeResNetCase.shape[0], conv.inChannels, 6, 5]), file: file, line: line)
        }
        let float = try c.floatForward()

        // 1. The float32 forward's piece, site by site.
        var reluSite = 0, flips = 0, worstForward = 0.0
        var stemBound = 0.0
        for kink in c.trace.kinks {
            let bound = likelyBound(kink.forwardRoundings, kink.input.map(abs).max() ?? 0)
            if kink.isMaxPool {
                // A window may take another maximum only if the two Double values are that close.
                let chosen = float.pattern.argmaxes[0], exact = c.trace.pattern.argmaxes[0]
                for o in chosen.indices where chosen[o] != exact[o] {
                    flips += 1
                    XCTAssertLessThanOrEqual(abs(kink.input[chosen[o]] - kink.input[exact[o]]), stemBound,
                                             "max pool window \(o) took another maximum", file: file, line: line)
                }
                continue
            }
            let on = float.pattern.relus[reluSite], exactOn = c.trace.pattern.relus[reluSite]
            let y = float.activations[reluSite]
            for i in on.indices {
                if on[i] != exactOn[i] {
                    flips += 1
                    XCTAssertLessThanOrEqual(kink.margins[i], bound, "\(kink.name) unit \(i) switched side", file: file, line: line)
                } else if on[i] {
                    worstForward = max(worstForward, abs(Double(y[i]) - kink.input[i]) / bound)
                }
            }
            if kink.name == "stem.relu" { stemBound = bound }
            reluSite += 1
        }
        XCTAssertEqual(reluSite, float.pattern.relus.count, file: file, line: line)
        XCTAssertLessThanOrEqual(worstForward, 1, "the float32 forward is off by more than its rounding bound", file: file, line: line)

        // The logits: the features' error through the head (Σ|W_k|·max|feature|) and the
        // head's own sums, n along the longest path.
        let logits = try c.network.logits(c.input).scalars
        let featureScale = c.trace.features.map(abs).max() ?? 0
        for k in logits.indices {
            let bound = likelyBound(c.trace.logitRoundings(winograd: winograd), c.headRowNorms[k % c.reference.classes] * featureScale)
            XCTAssertEqual(Double(logits[k]), c.trace.logits[k], accuracy: bound, "logit \(k)", file: file, line: line)
        }

        // 2. The gradient, every element, against the exact gradient of the float32 forward's piece.
        let graph = Graph()
        let input = graph.input(c.input)
        let output = try c.network.logits(input, in: graph)
        let gradient = try graph.gradients(of: output, seed: Tensor(shape: output.shape, values: c.seed), for: [input])[0].scalars
        let exact = flips == 0 ? c.gradient : c.reference.inputGradient(c.trace, seed: c.seed.map(Double.init), pattern: float.pattern)
        let size = exact.map(abs).max() ?? 0
        let bound = likelyBound(c.trace.backwardRoundings(winograd: winograd), size)
        var worst = 0
        for i in gradient.indices where abs(Double(gradient[i]) - exact[i]) > abs(Double(gradient[worst]) - exact[worst]) { worst = i }
        XCTAssertLessThanOrEqual(abs(Double(gradient[worst]) - exact[worst]), bound,
                                 "element \(worst): graph \(gradient[worst]), exact \(exact[worst]) (\(flips) units on the other side)",
                                 file: file, line: line)
        // The bound is far below the gradient's size (1e-4 of it through im2col, 1e-3 through
        // Winograd's larger rounding): a wrong mask, path, tap or weight would show.
        XCTAssertLessThan(bound, (winograd ? 1e-3 : 1e-4) * size, file: file, line: line)
    }

    func testWholeResNetGradientScalar() throws {
        try atInstructionSet(.scalar) { try wholeResNetCheck(winograd: true); try wholeResNetCheck(winograd: false) }
    }
    func testWholeResNetGradientAVX2() throws {
        try atInstructionSet(.avx2) { try wholeResNetCheck(winograd: true); try wholeResNetCheck(winograd: false) }
    }
    func testWholeResNetGradientAVX512() throws {
        try atInstructionSet(.avx512) { try wholeResNetCheck(winograd: true); try wholeResNetCheck(winograd: false) }
    }

    /// The Double reference's gradient is the exact gradient of its forward: central
    /// differences in Double at single elements and along random ±1 directions v, on one
    /// 24×20 image (the reference treats images independently).
    ///
    /// On a segment where the activation pattern does not change, the network is affine, so
    /// the central difference has no truncation error; h starts at 1e-3 (1e-5 along v) and is
    /// halved until the pattern at x ± h·v equals the pattern at x — then, layer by layer, each
    /// pre-activation is affine in the step along the whole segment and keeps its sign, so no
    /// kink is crossed in between. What remains is Double's rounding of the two losses, each
    /// bounded as the float32 logits are (`likelyBound` with Double's u), divided by 2h, and of
    /// the reference backward. No CPU kernel is involved: this runs once, not per level.
    func testDoubleReferenceGradientAgreesWithFiniteDifferences() throws {
        let c = try WholeResNetCase.shared.get()
        let (h0, w0) = (WholeResNetCase.shape[2], WholeResNetCase.shape[3])
        let x = Array(c.input.scalars[0..<(3 * h0 * w0)]).map(Double.init)
        let seed = Array(c.seed[0..<c.reference.classes]).map(Double.init)
        let trace = c.reference.forward(x, n: 1, h: h0, w: w0)
        let gradient = c.reference.inputGradient(trace, seed: seed)
        var random = SeededGenerator(seed: 11)
        var directions: [(name: String, v: [Double], h: Double)] = []
        for i in [0, x.count - 1] + (0..<2).map({ _ in Int.random(in: 0..<x.count, using: &random) }) {
            var e = [Double](repeating: 0, count: x.count)
            e[i] = 1
            directions.append(("element \(i)", e, 1e-3))
        }
        for d in 0..<2 { directions.append(("direction \(d)", (0..<x.count).map { _ in Bool.random(using: &random) ? 1 : -1 }, 1e-5)) }
        let size = gradient.map(abs).max() ?? 0
        let featureScale = trace.features.map(abs).max() ?? 0
        let lossError = likelyBound(trace.logitRoundings(winograd: false) + seed.count, zip(seed, c.headRowNorms).reduce(0) { $0 + abs($1.0) * $1.1 }
                                    * featureScale, unit: uDouble)
        for (name, v, start) in directions {
            var h = start
            var ends: (ReferenceResNet.Trace, ReferenceResNet.Trace)?
            for _ in 0..<30 {
                let plus = c.reference.forward(zip(x, v).map { $0 + h * $1 }, n: 1, h: h0, w: w0)
                let minus = c.reference.forward(zip(x, v).map { $0 - h * $1 }, n: 1, h: h0, w: w0)
                if plus.pattern == trace.pattern && minus.pattern == trace.pattern { ends = (plus, minus); break }
                h /= 2
            }
            guard let (plus, minus) = ends else { XCTFail("\(name): a kink at x itself"); continue }
            func loss(_ t: ReferenceResNet.Trace) -> Double { zip(t.logits, seed).reduce(0) { $0 + $1.0 * $1.1 } }
            let numeric = (loss(plus) - loss(minus)) / (2 * h)
            let analytic = zip(gradient, v).reduce(0) { $0 + $1.0 * $1.1 }
            let l1 = v.map(abs).reduce(0, +)
            let tolerance = 2 * lossError / (2 * h) + likelyBound(trace.backwardRoundings(winograd: false), size, unit: uDouble) * l1
            XCTAssertEqual(analytic, numeric, accuracy: tolerance, "\(name), h = \(h)")
            XCTAssertLessThan(tolerance, 1e-6 * size * l1.squareRoot(), "\(name): the bound checks nothing")
        }
    }

    // MARK: - Other graph properties

    func testGradientsMatchPlainForward() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 4))
        let x = DeterministicWeights.input(shape: [2, 3, 32, 32])
        let graph = Graph()
        let logits = try network.logits(graph.input(x), in: graph)
        // The graph records the very layer calls of the plain forward, so the two run the same
        // kernels on the same values: equal bit for bit.
        XCTAssertEqual(logits.value.scalars.map(\.bitPattern), try network.logits(x).scalars.map(\.bitPattern))
    }

    func testUnneededGradientsAreNotComputedAndGraphIsConsumed() throws {
        let graph = Graph()
        let constant = graph.input(Tensor(shape: [2, 2], values: [1, 2, 3, 4]), requiresGradient: false)
        let y = graph.multiply(constant, constant)
        XCTAssertFalse(y.requiresGradient)
        XCTAssertNil(graph.nodes[y.id].backward)
        let x = graph.input(Tensor(shape: [2, 2], values: [1, 1, 1, 1]))
        let z = graph.multiply(x, y)
        let gradient = try graph.gradients(of: z, seed: Tensor(shape: [2, 2], repeating: 1), for: [x, constant])
        XCTAssertEqual(gradient[0].scalars, [1, 4, 9, 16])
        XCTAssertEqual(gradient[1].scalars, [0, 0, 0, 0])
        XCTAssertTrue(graph.nodes.allSatisfy { $0.backward == nil }, "activations released")
    }

    func testIntermediateGradients() throws {
        let graph = Graph()
        let x = graph.input(Tensor(shape: [1, 3], values: [1, -2, 3]))
        let hidden = graph.multiply(x, x)
        let y = graph.multiply(hidden, x)
        let grads = try graph.gradients(of: y, seed: Tensor(shape: [1, 3], repeating: 1), for: [hidden, x])
        XCTAssertEqual(grads[0].scalars, [1, -2, 3])     // ∂(h·x)/∂h = x
        XCTAssertEqual(grads[1].scalars, [3, 12, 27])    // ∂x³/∂x = 3x²
    }
}

// MARK: - The whole-network case

/// λ of `likelyBound`.
private let lambda = 7.0

/// How far a value computed with n roundings, each of a term at most `scale`, may be from
/// the exact one: λ·u·√n·scale. Modelling the rounding errors as independent, mean zero and
/// at most u relative, Hoeffding's inequality puts their sum beyond λ·u·√(Σ terms²) with
/// probability below 2·exp(−λ²/2) ≈ 5e-11 for λ = 7 (Higham & Mary, SIAM J. Sci. Comput. 41,
/// 2019: this is why errors grow as √n, not n, in practice). The whole-network test makes
/// some ten thousand such comparisons, so a pass is not luck and a failure is not noise.
private func likelyBound(_ n: Int, _ scale: Double, unit: Double = u) -> Double {
    lambda * unit * Double(n).squareRoot() * scale
}

/// The small ResNet of the whole-network test, its input, and the Double forward and
/// gradient there, computed once (no CPU kernel is involved).
private struct WholeResNetCase: Sendable {
    let network: ResNet
    let reference: ReferenceResNet
    let input: Tensor
    let trace: ReferenceResNet.Trace
    let seed: [Float]
    /// ∇(Σ seed·logits) at `input`, on the Double forward's piece.
    let gradient: [Double]
    /// Σ_f |fc.weight[k, f]| per class.
    let headRowNorms: [Double]

    static let shape = [4, 3, 24, 20]
    static let shared = Result { try WholeResNetCase() }

    init() throws {
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 5)
        network = try ResNet(stateDict: stateDict)
        reference = try ReferenceResNet(stateDict: stateDict)
        var random = SeededGenerator(seed: 42)
        let shape = WholeResNetCase.shape
        input = Tensor(shape: shape, values: random.floats(shape.reduce(1, *)))
        seed = random.floats(shape[0] * reference.classes)
        trace = reference.forward(input.scalars.map(Double.init), n: shape[0], h: shape[2], w: shape[3])
        gradient = reference.inputGradient(trace, seed: seed.map(Double.init))
        let fc = try XCTUnwrap(stateDict["fc.weight"])
        let features = fc.shape[1]
        headRowNorms = (0..<fc.shape[0]).map { k in fc.scalars[(k * features)..<((k + 1) * features)].reduce(0.0) { $0 + Double(abs($1)) } }
    }

    /// The float32 forward at this level, through the layer calls the graph records: its
    /// activation pattern, and the ReLU outputs per site (stem, each block's inner ReLUs and
    /// its output, the reference's order).
    func floatForward() throws -> (pattern: ReferenceResNet.Pattern, activations: [[Float]]) {
        var pattern = ReferenceResNet.Pattern()
        var activations: [[Float]] = []
        func record(_ t: Tensor) {
            activations.append(t.scalars)
            pattern.relus.append(t.scalars.map { $0 > 0 })  // the ReLU backward's own test
        }
        var v = try network.stem(input)
        record(v)
        if let pool = network.stemPool {
            // The kernel's argmax: the first element of each 3×3 window (stride 2, padding 1)
            // holding the window's maximum.
            let before = v.scalars
            let (h, w) = (v.shape[2], v.shape[3])
            v = try pool(v)
            let (oh, ow) = (v.shape[2], v.shape[3])
            var argmax: [Int] = []
            for plane in 0..<(v.shape[0] * v.shape[1]) {
                for o in 0..<oh {
                    for q in 0..<ow {
                        let target = v.scalars[(plane * oh + o) * ow + q]
                        let window = (max(2 * o - 1, 0)...min(2 * o + 1, h - 1)).flatMap { ih in
                            (max(2 * q - 1, 0)...min(2 * q + 1, w - 1)).map { iw in (plane * h + ih) * w + iw }
                        }
                        argmax.append(window.first { before[$0] == target } ?? -1)
                    }
                }
            }
            pattern.argmaxes.append(argmax)
        }
        for stage in network.stages {
            for block in stage {
                var branch = v
                for (i, conv) in block.convolutions.enumerated() {
                    branch = try conv(branch)
                    if i < block.convolutions.count - 1 { record(branch) }
                }
                let shortcut = try block.downsample.map { conv throws(ElucidateError) in try conv(v) } ?? v
                v = branch.adding(shortcut, activation: .relu)
                record(v)
            }
        }
        return (pattern, activations)
    }
}
