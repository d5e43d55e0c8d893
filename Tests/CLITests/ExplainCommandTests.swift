import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain METHOD` end to end on a small deterministic ResNet18.
final class ExplainCommandTests: XCTestCase {
    var folder: URL!
    var model: String!
    var input: String!
    var network: ResNet!

    override func setUpWithError() throws {
        folder = try makeTemporaryDirectory("elucidate-explain")
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 3)
        network = try ResNet(stateDict: stateDict)
        model = folder.appendingPathComponent("m.safetensors").path
        input = folder.appendingPathComponent("x.npy").path
        try SafetensorsWriter.write(stateDict.tensors, metadata: ["labels": #"["a","b","c"]"#], to: URL(fileURLWithPath: model))
        try NPY.write(DeterministicWeights.input(shape: [2, 3, 40, 32]), to: URL(fileURLWithPath: input))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private func explain(_ method: String, _ extra: [String], output: String) throws -> CommandResult {
        try runElucidate(["explain", method, "--model", model, "--input-tensor", input, "--attributions", output] + extra)
    }

    func testIntegratedGradientsWritesAttributionsAndReport() throws {
        let result = try explain("integrated-gradients", ["--steps", "8", "--json", "--target", "1"], output: path("ig.npy"))
        XCTAssertEqual(result.status, 0, result.stderr)
        let attributions = try NPY.readFloat32(URL(fileURLWithPath: path("ig.npy")))
        XCTAssertEqual(attributions.shape, [2, 3, 40, 32])
        let expected = try IntegratedGradients(steps: 8).attribute(network, inputs: DeterministicWeights.input(shape: [2, 3, 40, 32]),
                                                                    targets: [1, 1])
        XCTAssertLessThanOrEqual(relativeL2Error(attributions.scalars, expected.values.scalars), 1e-6)

        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["method"] as? String, "integrated-gradients")
        XCTAssertNotNil(report["elapsedSeconds"] as? Double)
        let options = try XCTUnwrap(report["options"] as? [String: String])
        XCTAssertEqual(options["steps"], "8")
        XCTAssertEqual(options["quadrature"], "gausslegendre")
        let inputs = try XCTUnwrap(report["inputs"] as? [[String: Any]])
        XCTAssertEqual(inputs.count, 2)
        XCTAssertEqual(inputs[0]["target"] as? Int, 1)
        XCTAssertEqual(inputs[0]["targetLabel"] as? String, "b")
        XCTAssertNotNil(inputs[0]["predicted"] as? Int)
        XCTAssertNotNil(inputs[0]["probability"] as? Double)
        let delta = try XCTUnwrap((inputs[0]["convergenceDelta"] as? NSNumber)?.floatValue)
        XCTAssertEqual(delta, expected.convergenceDelta![0], accuracy: 1e-5)
    }

    func testDefaultTargetIsThePrediction() throws {
        let result = try explain("saliency", ["--json"], output: path("s.npy"))
        XCTAssertEqual(result.status, 0, result.stderr)
        let inputs = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["inputs"] as? [[String: Any]])
        for entry in inputs { XCTAssertEqual(entry["target"] as? Int, entry["predicted"] as? Int) }
    }

    func testSeedMakesStochasticMethodsReproducibleBitForBit() throws {
        for (method, extra) in [("gradient-shap", ["--samples", "3"]),
                                ("saliency", ["--noise-tunnel", "smoothgrad-sq", "--nt-samples", "3", "--nt-stdev", "0.3"]),
                                ("integrated-gradients", ["--steps", "4", "--noise-tunnel", "vargrad", "--nt-samples", "2"])] {
            var outputs: [Data] = []
            for (run, seed) in [(0, "11"), (1, "11"), (2, "12")] {
                let out = path("\(method)-\(run).npy")
                let result = try explain(method, extra + ["--seed", seed], output: out)
                XCTAssertEqual(result.status, 0, result.stderr)
                outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
            }
            XCTAssertEqual(outputs[0], outputs[1], "\(method): same seed, different bytes")
            XCTAssertNotEqual(outputs[0], outputs[2], "\(method): different seeds, same bytes")
        }
    }

    func testEveryMethodRuns() throws {
        let baselines = path("baselines.npy")
        try NPY.write(Tensor(zeros: [2, 3, 40, 32]), to: URL(fileURLWithPath: baselines))
        for (method, extra) in [("input-x-gradient", []), ("deeplift", ["--baseline", "0.1"]), ("deeplift-shap", ["--baselines", baselines]),
                                ("guided-backprop", []), ("deconvolution", []), ("gradient-shap", ["--baselines", baselines, "--seed", "1"])] {
            let out = path("\(method).npy")
            let result = try explain(method, extra, output: out)
            XCTAssertEqual(result.status, 0, "\(method): \(result.stderr)")
            XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: out)).shape, [2, 3, 40, 32], method)
        }
    }

    func testVisualizeWritesThePictureBesideTheAttributions() throws {
        let picture = path("ig.png")
        let result = try runElucidate(["explain", "integrated-gradients", "--model", model, fixtureURL("images/photo.jpg").path,
                                       "--steps", "4", "--attributions", path("ig.npy"), "--visualize", picture,
                                       "--panels", "original-image:all,heat-map:positive,blended-heat-map:absolute-value", "--colorbar"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: picture))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let bad = try runElucidate(["explain", "saliency", "--model", model, "--input-tensor", input, "--attributions", path("s.npy"),
                                    "--visualize", path("s.png"), "--panels", "masked-image:all"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("s.npy")))
    }

    /// The issue's own command: a picture without an attributions file, and the built-in model.
    func testVisualizeAloneWithTheBuiltInModel() throws {
        let picture = path("sneaker.png")
        let result = try runElucidate(["explain", "integrated-gradients", packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path,
                                       "--steps", "8", "--visualize", picture])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: picture))
        let neither = try runElucidate(["explain", "saliency", "--model", model, "--input-tensor", input])
        XCTAssertNotEqual(neither.status, 0)
        XCTAssertTrue(neither.stderr.contains("--attributions"), neither.stderr)
    }

    func testBadOptionsAreOneLine() throws {
        for (method, extra) in [("saliency", ["--target", "3"]), ("saliency", ["--target", "-1"]),
                                ("integrated-gradients", ["--steps", "1", "--quadrature", "riemann-left"]),
                                ("integrated-gradients", ["--baseline", path("missing.npy")]),
                                ("deeplift-shap", []), ("saliency", ["--noise-tunnel", "fog"])] {
            let out = path("bad.npy")
            let result = try explain(method, extra, output: out)
            XCTAssertNotEqual(result.status, 0, "\(method) \(extra)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(method) \(extra): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }
}
