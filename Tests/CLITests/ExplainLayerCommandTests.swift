import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain grad-cam|layer-…` and `elucidate models --layers` end to end on a small
/// deterministic ResNet18.
final class ExplainLayerCommandTests: SmallResNetTestCase {
    /// The headline command, on a small model: (N,1,h,w) at layer4's resolution.
    func testGradCamWritesTheLayersMap() throws {
        let result = try explain("grad-cam", ["--layer", "layer4", "--target", "2", "--json"], output: path("cam.npy"))
        XCTAssertEqual(result.status, 0, result.stderr)
        let values = try NPY.readFloat32(URL(fileURLWithPath: path("cam.npy")))
        XCTAssertEqual(values.shape, [2, 1, 2, 1])
        let expected = try LayerGradCam(layer: LayerChoice("layer4")).attribute(network, inputs: inputTensor, targets: [2, 2])
        XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.values.scalars), 1e-6)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["shape"] as? [Int], [2, 1, 2, 1])
        let options = try XCTUnwrap(report["options"] as? [String: String])
        XCTAssertEqual(options["layer"], "layer4")
        XCTAssertEqual(options["relu-attributions"], "false")

        let upsampled = try explain("grad-cam", ["--layer", "layer4", "--upsample", "bilinear", "--relu-attributions"],
                                    output: path("up.npy"))
        XCTAssertEqual(upsampled.status, 0, upsampled.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("up.npy"))).shape, [2, 1, 40, 32])
    }

    func testLayerMethodsKeepTheLayersShape() throws {
        let ig = try explain("layer-integrated-gradients", ["--layer", "layer3", "--steps", "4", "--json"], output: path("lig.npy"))
        XCTAssertEqual(ig.status, 0, ig.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("lig.npy"))).shape, [2, 256, 3, 2])
        XCTAssertTrue(ig.stdout.contains("convergenceDelta"), ig.stdout)
        let activation = try explain("layer-activation", ["--layer", "layer2.0.conv1"], output: path("act.npy"))
        XCTAssertEqual(activation.status, 0, activation.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("act.npy"))).shape, [2, 128, 5, 4])
        let input = try explain("layer-gradient-x-activation", ["--layer", "layer4", "--layer-input"], output: path("gxa.npy"))
        XCTAssertEqual(input.status, 0, input.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("gxa.npy"))).shape, [2, 256, 3, 2])
    }

    func testNeuronAndGuidedGradCamMethodsKeepTheInputsShape() throws {
        let neuron = try explain("neuron-gradient", ["--layer", "layer3", "--neuron", "5,1,1"], output: path("ng.npy"))
        XCTAssertEqual(neuron.status, 0, neuron.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("ng.npy"))).shape, [2, 3, 40, 32])
        let guided = try explain("guided-grad-cam", ["--layer", "layer4"], output: path("ggc.npy"))
        XCTAssertEqual(guided.status, 0, guided.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("ggc.npy"))).shape, [2, 3, 40, 32])
        let conductance = try explain("layer-conductance", ["--layer", "layer3", "--steps", "3"], output: path("lc.npy"))
        XCTAssertEqual(conductance.status, 0, conductance.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("lc.npy"))).shape, [2, 256, 3, 2])

        let outside = try explain("neuron-gradient", ["--layer", "layer3", "--neuron", "5,9,1"], output: path("bad.npy"))
        XCTAssertNotEqual(outside.status, 0)
        XCTAssertTrue(outside.stderr.contains("--neuron 5,9,1 is not a unit of layer 'layer3'"), outside.stderr)
        let missing = try explain("neuron-integrated-gradients", ["--layer", "layer3"], output: path("bad.npy"))
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("needs --neuron C,H,W"), missing.stderr)
    }

    func testDeepLiftAblationAndSeededGradientSHAP() throws {
        let deeplift = try explain("layer-deeplift", ["--layer", "layer1.0.bn1", "--json"], output: path("dl.npy"))
        XCTAssertEqual(deeplift.status, 0, deeplift.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("dl.npy"))).shape, [2, 64, 10, 8])
        try NPY.write(int32: (0..<6).map { Int32($0 % 2) }, shape: [1, 1, 3, 2], to: URL(fileURLWithPath: path("mask.npy")))
        let ablation = try explain("layer-feature-ablation", ["--layer", "layer3", "--layer-mask", path("mask.npy")],
                                   output: path("fa.npy"))
        XCTAssertEqual(ablation.status, 0, ablation.stderr)
        let ablated = try NPY.readFloat32(URL(fileURLWithPath: path("fa.npy")))
        XCTAssertEqual(ablated.shape, [2, 256, 3, 2])
        XCTAssertEqual(ablated[0, 0, 0, 0], ablated[0, 255, 1, 0], "one group: one value")
        let badMask = try explain("layer-feature-ablation", ["--layer", "layer4", "--layer-mask", path("mask.npy")],
                                  output: path("bad.npy"))
        XCTAssertNotEqual(badMask.status, 0)
        XCTAssertTrue(badMask.stderr.contains("does not broadcast"), badMask.stderr)
        for name in ["shap1.npy", "shap2.npy"] {
            let shap = try explain("layer-gradient-shap", ["--layer", "layer3", "--samples", "3", "--seed", "7"], output: path(name))
            XCTAssertEqual(shap.status, 0, shap.stderr)
        }
        let first = try NPY.readFloat32(URL(fileURLWithPath: path("shap1.npy")))
        XCTAssertEqual(first.shape, [2, 256, 3, 2])
        XCTAssertTrue(first.scalars == (try NPY.readFloat32(URL(fileURLWithPath: path("shap2.npy")))).scalars, "same seed, same draws")
    }

    func testBadLayerNamesAreOneClearLine() throws {
        let result = try explain("grad-cam", ["--layer", "layer4.1.conv9"], output: path("bad.npy"))
        XCTAssertNotEqual(result.status, 0)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("unknown layer 'layer4.1.conv9'"), result.stderr)
        XCTAssertTrue(result.stderr.contains("'layer4.1.conv1'"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.npy")))

        let missing = try explain("grad-cam", [], output: path("bad.npy"))
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("grad-cam needs --layer NAME"), missing.stderr)

        // pytorch-grad-cam's CAMs have no noise tunnel to follow; Captum's layer methods do.
        let tunnel = try explain("score-cam", ["--layer", "layer4", "--noise-tunnel", "smoothgrad"], output: path("bad.npy"))
        XCTAssertNotEqual(tunnel.status, 0)
        XCTAssertTrue(tunnel.stderr.contains("--noise-tunnel does not apply to score-cam"), tunnel.stderr)
    }

    /// Captum's NoiseTunnel around a layer method keeps the layer's shape; with σ = 0 every
    /// noisy copy is the input, so SmoothGrad equals the method itself.
    func testNoiseTunnelAroundALayerMethodKeepsTheLayersShape() throws {
        let plain = try explain("grad-cam", ["--layer", "layer3"], output: path("plain.npy"))
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let tunnel = try explain("grad-cam", ["--layer", "layer3", "--noise-tunnel", "smoothgrad", "--nt-samples", "3",
                                              "--nt-stdev", "0"], output: path("tunnel.npy"))
        XCTAssertEqual(tunnel.status, 0, tunnel.stderr)
        let (a, b) = (try NPY.readFloat32(URL(fileURLWithPath: path("plain.npy"))),
                      try NPY.readFloat32(URL(fileURLWithPath: path("tunnel.npy"))))
        XCTAssertEqual(b.shape, a.shape)
        XCTAssertEqual(b.shape[1], 1)
        // Three copies of one map averaged in double: within a float32 rounding of the map.
        for (x, y) in zip(a.scalars, b.scalars) { XCTAssertEqual(x, y, accuracy: 1e-6 * max(1, abs(x))) }
    }

    func testModelsListsLayersWithShapes() throws {
        let result = try runElucidate(["models", "--layers", model, "--input-size", "64,64"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("layer4.1.conv2"), result.stdout)
        XCTAssertTrue(result.stdout.contains("[1, 512, 2, 2]"), result.stdout)
        let json = try runElucidate(["models", "--layers", model, "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let layers = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(layers.first?["name"] as? String, "conv1")
        XCTAssertEqual(layers.first?["shape"] as? [Int], [1, 64, 112, 112])
        let bad = try runElucidate(["models", "--input-size", "64,64"])
        XCTAssertNotEqual(bad.status, 0)
    }
}

/// The headline check from the command line: ResNet34 Grad-CAM on layer4 equals
/// Captum's `LayerGradCam` (golden `r34_grad_cam_layer4`) within 1e-3 relative L2.
final class GradCamHeadlineCommandTests: XCTestCase {
    func testResNet34GradCamMatchesCaptum() throws {
        let folder = try makeTemporaryDirectory("elucidate-grad-cam-r34")
        defer { try? FileManager.default.removeItem(at: folder) }
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet34")!, classes: 1000)
        let model = folder.appendingPathComponent("resnet34.safetensors")
        let input = folder.appendingPathComponent("x.npy")
        let output = folder.appendingPathComponent("a.npy")
        try SafetensorsWriter.write(stateDict.tensors, metadata: [:], to: model)
        try NPY.write(DeterministicWeights.input(key: "input", shape: [1, 3, 224, 224]), to: input)
        let result = try runElucidate(["explain", "grad-cam", "--layer", "layer4", "--model", model.path,
                                       "--input-tensor", input.path, "--target", "264", "--attributions", output.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let values = try NPY.readFloat32(output)
        let expected = try NPY.readFloat32(fixtureURL("layers/r34_grad_cam_layer4.npy"))
        XCTAssertEqual(values.shape, [1, 1, 7, 7])
        XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.scalars), 1e-3)
    }
}
