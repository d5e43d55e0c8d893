@testable import Engine
import TestSupport
import XCTest

/// The graph's input gradients against central finite differences, op by op and through a
/// whole ResNet. Forward passes are float32, so differences use h = 1e-2 on smooth
/// (ReLU-free or kink-avoiding) functions and a 1e-2 relative tolerance.
final class GraphGradientTests: XCTestCase {
    var random = SeededGenerator(seed: 42)

    /// Σ w·f(x) and its gradient by the graph, vs central differences at `probes` elements.
    func checkGradient(shape: [Int], probes: Int = 12, tolerance: Float = 1e-2, h: Float = 1e-2,
                       _ build: (Graph, Variable) throws(ElucidateError) -> Variable,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let x = Tensor(shape: shape, values: random.floats(shape.reduce(1, *)))
        let graph = Graph()
        let input = graph.input(x)
        let output = try build(graph, input)
        let weights = Tensor(shape: output.shape, values: random.floats(output.value.count))
        let gradient = try graph.gradients(of: output, seed: weights, for: [input])[0]
        func loss(_ value: Tensor) throws -> Double {
            let g = Graph()
            let y = try build(g, g.input(value, requiresGradient: false)).value
            return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        // Errors are judged against the gradient's own scale, not against 1.
        let scale = max(gradient.scalars.map { abs($0) }.max() ?? 0, 1e-6)
        for _ in 0..<probes {
            let i = Int.random(in: 0..<x.count, using: &random)
            var plus = x, minus = x
            plus.withUnsafeMutableBufferPointer { $0[i] += h }
            minus.withUnsafeMutableBufferPointer { $0[i] -= h }
            let numeric = Float((try loss(plus) - loss(minus)) / Double(2 * h))
            let analytic = gradient.scalars[i]
            XCTAssertEqual(analytic, numeric, accuracy: tolerance * max(abs(numeric), 0.1 * scale), "element \(i)", file: file, line: line)
        }
    }

    func conv(_ k: Int, _ c: Int, _ r: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) -> Conv2d {
        Conv2d(weight: Tensor(shape: [k, c, r, r], values: random.floats(k * c * r * r)),
               bias: Tensor(shape: [k], values: random.floats(k)), stride: stride, padding: padding, dilation: dilation)
    }

    func testConvolutions() throws {
        for layer in [conv(4, 3, 3, padding: 1), conv(5, 3, 3, stride: 2, padding: 1), conv(4, 3, 1),
                      conv(3, 3, 1, stride: 2), conv(2, 3, 3, padding: 2, dilation: 2), conv(4, 3, 7, stride: 2, padding: 3)] {
            try checkGradient(shape: [2, 3, 9, 7]) { g, x throws(ElucidateError) in try g.conv2d(x, layer) }
        }
    }

    func testPoolsLinearAndShapes() throws {
        try checkGradient(shape: [2, 3, 9, 8]) { g, x throws(ElucidateError) in try g.pool(x, .maxPool(kernelSize: 3, stride: 2, padding: 1)) }
        try checkGradient(shape: [2, 3, 9, 8]) { g, x throws(ElucidateError) in
            try g.pool(x, Pool2d(.average(countIncludePad: true), kernelSize: 3, stride: 2, padding: 1))
        }
        try checkGradient(shape: [2, 3, 7, 5]) { g, x throws(ElucidateError) in try g.adaptivePool(x, AdaptivePool2d(.average, outputSize: 3)) }
        try checkGradient(shape: [2, 3, 7, 5]) { g, x throws(ElucidateError) in try g.adaptivePool(x, AdaptivePool2d(.max, outputSize: 2)) }
        let linear = Linear(weight: Tensor(shape: [4, 6], values: random.floats(24)), bias: Tensor(shape: [4], values: random.floats(4)))
        try checkGradient(shape: [3, 6]) { g, x throws(ElucidateError) in try g.linear(x, linear) }
        try checkGradient(shape: [3, 6]) { g, x in g.softmax(x) }
        try checkGradient(shape: [2, 3, 2, 2]) { g, x in g.reshape(x, [2, 12]) }
        try checkGradient(shape: [2, 3, 4, 4]) { g, x in g.concatenateChannels([x, g.multiply(x, x), x]) }
        try checkGradient(shape: [2, 3, 4, 4]) { g, x in g.add(x, g.multiply(x, x)) }
    }

    func testBatchNormAndReLUAwayFromTheKink() throws {
        let norm = BatchNorm2d(weight: Tensor(shape: [3], values: [0.5, -1, 2]), bias: Tensor(shape: [3], values: [0.1, 0.2, 0.3]),
                               runningMean: Tensor(shape: [3], values: [0.1, -0.2, 0]), runningVar: Tensor(shape: [3], values: [0.5, 1, 2]))
        try checkGradient(shape: [2, 3, 4, 5]) { g, x throws(ElucidateError) in try g.batchNorm(x, norm) }
        // ReLU: FD is exact wherever no element lies within h of 0.
        try checkGradient(shape: [2, 3, 4, 5], h: 1e-3) { g, x in g.relu(x) }
    }

    func testWholeResNetGradient() throws {
        let arch = ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1])
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 5))
        try checkGradient(shape: [1, 3, 24, 20], probes: 8, tolerance: 3e-2, h: 1e-3) { g, x throws(ElucidateError) in
            try network.logits(x, in: g)
        }
    }

    func testGradientsMatchPlainForward() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 4))
        let x = DeterministicWeights.input(shape: [2, 3, 32, 32])
        let graph = Graph()
        let logits = try network.logits(graph.input(x), in: graph)
        assertClose(logits.value, try network.logits(x), rtol: 1e-6, atol: 1e-6)
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

    /// Named layers get weight and bias gradients (checked by finite differences); unnamed
    /// ones, the default, get none.
    func testParameterGradientsOnlyWhenAsked() throws {
        let x = Tensor(shape: [2, 3, 6, 5], values: random.floats(180))
        let layer = conv(4, 3, 3, stride: 2, padding: 1)
        let head = Linear(weight: Tensor(shape: [2, 4 * 3 * 3], values: random.floats(72)), bias: Tensor(shape: [2], values: random.floats(2)))
        let seed = Tensor(shape: [2, 2], values: random.floats(4))
        func loss(_ convLayer: Conv2d, _ linear: Linear, names: Bool) throws -> (Double, Graph) {
            let graph = Graph()
            let input = graph.input(x, requiresGradient: false)
            let hidden = try graph.conv2d(input, convLayer, parameterName: names ? "conv" : nil)
            let flat = graph.reshape(hidden, [2, 36])
            let out = try graph.linear(flat, linear, parameterName: names ? "fc" : nil)
            let value = zip(out.value.scalars, seed.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            _ = try graph.gradients(of: out, seed: seed, for: [])
            return (value, graph)
        }
        let (_, unnamed) = try loss(layer, head, names: false)
        XCTAssertTrue(unnamed.parameterGradients.isEmpty)
        let (_, named) = try loss(layer, head, names: true)
        XCTAssertEqual(Set(named.parameterGradients.keys), ["conv.weight", "conv.bias", "fc.weight", "fc.bias"])
        let h: Float = 1e-2
        for (key, index) in [("conv.weight", 5), ("conv.weight", 77), ("conv.bias", 2), ("fc.weight", 40), ("fc.bias", 1)] {
            func perturbed(_ delta: Float) throws -> Double {
                var convLayer = layer, linear = head
                switch key {
                case "conv.weight":
                    var w = layer.weight; w.withUnsafeMutableBufferPointer { $0[index] += delta }
                    convLayer = Conv2d(weight: w, bias: layer.bias, stride: layer.stride, padding: layer.padding, dilation: layer.dilation)
                case "conv.bias":
                    var b = layer.bias!; b.withUnsafeMutableBufferPointer { $0[index] += delta }
                    convLayer = Conv2d(weight: layer.weight, bias: b, stride: layer.stride, padding: layer.padding, dilation: layer.dilation)
                case "fc.weight":
                    var w = head.weight; w.withUnsafeMutableBufferPointer { $0[index] += delta }
                    linear = Linear(weight: w, bias: head.bias)
                default:
                    var b = head.bias!; b.withUnsafeMutableBufferPointer { $0[index] += delta }
                    linear = Linear(weight: head.weight, bias: b)
                }
                return try loss(convLayer, linear, names: false).0
            }
            let numeric = Float((try perturbed(h) - perturbed(-h)) / Double(2 * h))
            let analytic = try XCTUnwrap(named.parameterGradients[key]).scalars[index]
            XCTAssertEqual(analytic, numeric, accuracy: 1e-2 * max(1, abs(numeric)), "\(key)[\(index)]")
        }
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
