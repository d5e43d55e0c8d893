import Elucidate
import Foundation
import TestSupport
import XCTest

/// The layer methods against Captum's definitions computed by hand from the graph's own
/// gradients, and their invariants (until Captum's goldens check them directly).
final class LayerMethodsTests: XCTestCase {
    nonisolated(unsafe) static var network: ResNet = {
        try! ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 5))
    }()
    let input = DeterministicWeights.input(shape: [2, 3, 48, 40])
    let targets = [1, 3]

    /// The layer's value and d logit[target] / d layer, straight from one graph.
    func layerGradient(_ name: String) throws -> (value: Tensor, gradient: Tensor) {
        let graph = Graph()
        let (logits, layer) = try Self.network.logits(graph.input(input), in: graph, tapping: LayerTap(name))
        var seed = Tensor(zeros: logits.shape)
        for (row, target) in targets.enumerated() { seed[row, target] = 1 }
        return (layer.value, try graph.gradients(of: logits, seed: seed, for: [layer])[0])
    }

    func testLayerActivationIsTheLayer() throws {
        let attribution = try LayerActivation(layer: LayerChoice("layer3"), batchSize: 1)
            .attribute(Self.network, inputs: input, targets: targets)
        XCTAssertEqual(attribution.values.shape, [2, 256, 3, 3])
        XCTAssertLessThanOrEqual(relativeL2Error(attribution.values.scalars, try layerGradient("layer3").value.scalars), 1e-6)
    }

    func testLayerGradientXActivation() throws {
        let (value, gradient) = try layerGradient("layer2.1.conv2")
        let attribution = try LayerGradientXActivation(layer: LayerChoice("layer2.1.conv2"), batchSize: 1)
            .attribute(Self.network, inputs: input, targets: targets)
        XCTAssertEqual(attribution.values.shape, value.shape)
        XCTAssertLessThanOrEqual(relativeL2Error(attribution.values.scalars, gradient.multiplying(value).scalars), 1e-6)
        let plain = try LayerGradientXActivation(layer: LayerChoice("layer2.1.conv2"), multiplyByInputs: false)
            .attribute(Self.network, inputs: input, targets: targets)
        XCTAssertLessThanOrEqual(relativeL2Error(plain.values.scalars, gradient.scalars), 1e-6)
    }

    func testGradCamIsTheManualFormula() throws {
        let (value, gradient) = try layerGradient("layer4")
        let (n, c, h, w) = (value.shape[0], value.shape[1], value.shape[2], value.shape[3])
        var expected = [Float](repeating: 0, count: n * h * w)
        for row in 0..<n {
            for channel in 0..<c {
                var mean: Double = 0
                for y in 0..<h { for x in 0..<w { mean += Double(gradient[row, channel, y, x]) } }
                mean /= Double(h * w)
                for y in 0..<h { for x in 0..<w { expected[(row * h + y) * w + x] += Float(mean) * value[row, channel, y, x] } }
            }
        }
        let camMethod = LayerGradCam(layer: LayerChoice("layer4"))
        let cam = try camMethod.attribute(Self.network, inputs: input, targets: targets)
        XCTAssertEqual(cam.values.shape, [2, 1, h, w])
        XCTAssertLessThanOrEqual(relativeL2Error(cam.values.scalars, expected), 1e-5)
        let relu = try LayerGradCam(layer: LayerChoice("layer4"), reluAttributions: true)
            .attribute(Self.network, inputs: input, targets: targets)
        XCTAssertLessThanOrEqual(relativeL2Error(relu.values.scalars, expected.map { max($0, 0) }), 1e-5)
        let upsampled = try LayerGradCam(layer: LayerChoice("layer4"), upsample: .bilinear)
            .attribute(Self.network, inputs: input, targets: targets)
        XCTAssertEqual(upsampled.values.shape, [2, 1, 48, 40])
    }

    /// PyTorch's `F.interpolate(x, size, mode)` with `align_corners=False`, values from PyTorch.
    func testInterpolationMatchesPyTorch() throws {
        let small = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        XCTAssertEqual(try LayerInterpolation.bilinear.resize(small, height: 4, width: 4).scalars,
                       [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4])
        XCTAssertEqual(try LayerInterpolation.nearest.resize(small, height: 4, width: 3).scalars,
                       [1, 1, 2, 1, 1, 2, 3, 3, 4, 3, 3, 4])
        let row = Tensor(shape: [1, 1, 1, 3], values: [1, 2, 3])
        XCTAssertEqual(try LayerInterpolation.nearest.resize(row, height: 1, width: 2).scalars, [1, 2])
        XCTAssertEqual(try LayerInterpolation.bilinear.resize(row, height: 1, width: 2).scalars, [1.25, 2.75])
    }

    /// On `layer4`, everything after the layer depends on the input only through it, so
    /// completeness holds: Σ attributions ≈ F(x) − F(x′).
    func testLayerIntegratedGradientsCompleteness() throws {
        let method = LayerIntegratedGradients(layer: LayerChoice("layer4"), steps: 64, internalBatchSize: 32)
        let attribution = try method.attribute(Self.network, inputs: input, targets: targets)
        XCTAssertEqual(attribution.values.shape, [2, 512, 2, 2])
        let scores = try Self.network.logits(input)
        let base = try Self.network.logits(Tensor(zeros: input.shape))
        for (row, target) in targets.enumerated() {
            let change = scores[row, target] - base[row, target]
            let delta = try XCTUnwrap(attribution.convergenceDelta?[row])
            XCTAssertLessThanOrEqual(abs(delta), 1e-3 * max(1, abs(change)), "row \(row): delta \(delta) for a change \(change)")
        }
    }

    func testLayerMethodsNeedANamedLayerModel() throws {
        XCTAssertThrowsError(try LayerGradCam(layer: LayerChoice("layer9")).attribute(Self.network, inputs: input, targets: targets)) {
            XCTAssertTrue(($0 as! ElucidateError).message.contains("unknown layer 'layer9'"), "\($0)")
        }
    }
}
