import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain grad-cam-plus-plus|xgrad-cam|hires-cam|layer-cam|eigen-cam|score-cam|ablation-cam`
/// end to end on a small deterministic ResNet18: the raw map (N,1,h,w) at the layer's resolution,
/// the library's result, and bad layers as one error line.
final class ExplainCAMCommandTests: SmallResNetTestCase {
    func testEveryCAMWritesTheRawMapTheLibraryComputes() throws {
        let layer = LayerChoice("layer3")
        let methods: [(String, [String], any AttributionMethod)] = [
            ("grad-cam-plus-plus", [], GradientCAM(.gradCAMPlusPlus, layer: layer)),
            ("xgrad-cam", [], GradientCAM(.xgradCAM, layer: layer)),
            ("hires-cam", [], GradientCAM(.hiResCAM, layer: layer)),
            ("layer-cam", [], GradientCAM(.layerCAM, layer: layer)),
            ("eigen-cam", [], EigenCAM(layer: layer)),
            ("score-cam", ["--batch-size", "100"], ScoreCAM(layer: layer, batchSize: 7)),
            ("ablation-cam", ["--batch-size", "50"], AblationCAM(layer: layer, batchSize: 9)),
        ]
        for (name, extra, method) in methods {
            let output = path("\(name).npy")
            let result = try explain(name, ["--layer", "layer3", "--target", "1", "--json"] + extra, output: output)
            XCTAssertEqual(result.status, 0, "\(name): \(result.stderr)")
            let values = try NPY.readFloat32(URL(fileURLWithPath: output))
            XCTAssertEqual(values.shape, [2, 1, 3, 2], name)
            let expected = try method.attribute(network, inputs: inputTensor, targets: [1, 1])
            XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.values.scalars), 1e-5, name)
            let final = CAMPostprocessing.final(raw: values, inputSize: inputTensor.shape)
            XCTAssertEqual(final.shape, [2, 1, 40, 32], name)
            XCTAssertTrue(final.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, name)
        }
    }

    func testBadLayerNamesAreOneClearLine() throws {
        for name in ["score-cam", "eigen-cam", "layer-cam"] {
            let result = try explain(name, ["--layer", "layer4.1.conv9"], output: path("bad.npy"))
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("unknown layer 'layer4.1.conv9'"), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.npy")))
        }
        let flat = try explain("eigen-cam", ["--layer", "fc"], output: path("bad.npy"))
        XCTAssertNotEqual(flat.status, 0)
        XCTAssertEqual(flat.stderr.split(separator: "\n").count, 1, flat.stderr)
        XCTAssertTrue(flat.stderr.contains("needs a layer with a 4-D output"), flat.stderr)
        let missing = try explain("ablation-cam", [], output: path("bad.npy"))
        XCTAssertTrue(missing.stderr.contains("ablation-cam needs --layer NAME"), missing.stderr)
        let batch = try explain("score-cam", ["--layer", "layer4", "--batch-size", "0"], output: path("bad.npy"))
        XCTAssertNotEqual(batch.status, 0)
        XCTAssertTrue(batch.stderr.contains("--batch-size must be at least 1"), batch.stderr)
    }

    /// `--visualize` and `elucidate visualize` draw (N,1,h,w) maps upsampled to the photo, and
    /// the cam-overlay view is pytorch-grad-cam's show_cam_on_image.
    func testCAMPicturesAreDrawnOverThePhoto() throws {
        let result = try explain("layer-cam", ["--layer", "layer3", "--visualize", path("cam.png"),
                                               "--panels", "original-image:all,heat-map:positive,cam-overlay:positive"],
                                 output: path("cam.npy"))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("cam.png")))

        let bare = try runElucidate(["visualize", path("cam.npy"), "--input-tensor", input, "--index", "1",
                                     "--out", path("overlay.png"), "--panels", "cam-overlay:positive"])
        XCTAssertEqual(bare.status, 0, bare.stderr)
        XCTAssertTrue(bare.stdout.contains("32×40 pixels"), bare.stdout)

        let grad = try explain("grad-cam", ["--layer", "layer4", "--visualize", path("grad.png")], output: path("grad.npy"))
        XCTAssertEqual(grad.status, 0, grad.stderr)
    }

    /// Ablation-CAM's shortcut: resuming the forward pass after a stage or block gives the
    /// same logits as the whole pass; other layers are not resumable.
    func testResumingAfterALayerIsTheWholeForwardPass() throws {
        let expected = try network.logits(inputTensor)
        for name in ["layer2", "layer3.0", "layer3", "layer4.1", "layer4"] {
            let activation = try LayerActivation(layer: LayerChoice(name)).attribute(network, inputs: inputTensor, targets: [0, 0])
            let resumed = try XCTUnwrap(try network.logits(resumingAfter: name, output: activation.values), name)
            XCTAssertLessThanOrEqual(relativeL2Error(resumed.scalars, expected.scalars), 1e-6, name)
        }
        XCTAssertNil(try network.logits(resumingAfter: "layer4.1.conv2", output: inputTensor))
    }
}
