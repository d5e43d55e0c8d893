import Engine
import Foundation
import TestSupport
import XCTest

/// `elucidate explain occlusion|feature-ablation` end to end on a small deterministic ResNet18.
final class ExplainPerturbationCommandTests: XCTestCase {
    var folder: URL!
    var model: String!
    var input: String!
    var network: ResNet!
    let shape = [2, 3, 40, 32]

    override func setUpWithError() throws {
        folder = try makeTemporaryDirectory("elucidate-perturbation")
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 3)
        network = try ResNet(stateDict: stateDict)
        model = folder.appendingPathComponent("m.safetensors").path
        input = folder.appendingPathComponent("x.npy").path
        try SafetensorsWriter.write(stateDict.tensors, metadata: ["labels": #"["a","b","c"]"#], to: URL(fileURLWithPath: model))
        try NPY.write(DeterministicWeights.input(shape: shape), to: URL(fileURLWithPath: input))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private func explain(_ method: String, _ extra: [String], output: String) throws -> CommandResult {
        try runElucidate(["explain", method, "--model", model, "--input-tensor", input, "--attributions", output] + extra)
    }

    func testOcclusionMatchesTheLibraryAndReports() throws {
        let result = try explain("occlusion", ["--window", "3,9,9", "--stride", "3,6,6", "--baseline", "0.5", "--target", "2",
                                               "--json", "--perturbations-per-eval", "4"], output: path("o.npy"))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "", "no progress bar when stderr is not a terminal")
        let attributions = try NPY.readFloat32(URL(fileURLWithPath: path("o.npy")))
        XCTAssertEqual(attributions.shape, shape)
        let expected = try Occlusion(window: [3, 9, 9], stride: [3, 6, 6], baseline: .constant(0.5), evaluation: .full)
            .attribute(network, inputs: DeterministicWeights.input(shape: shape), targets: [2, 2])
        XCTAssertLessThanOrEqual(relativeL2Error(attributions.scalars, expected.values.scalars), 1e-4)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["method"] as? String, "occlusion")
        let options = try XCTUnwrap(report["options"] as? [String: String])
        XCTAssertEqual(options["window"], "3,9,9")
        XCTAssertEqual(options["evaluation"], "incremental")
    }

    func testFeatureAblationWithGridAndMaskFile() throws {
        let grid = try explain("feature-ablation", ["--grid", "4", "--quiet"], output: path("g.npy"))
        XCTAssertEqual(grid.status, 0, grid.stderr)
        let values = try NPY.readFloat32(URL(fileURLWithPath: path("g.npy")))
        XCTAssertEqual(values.shape, shape)
        XCTAssertLessThanOrEqual(Set(values.scalars).count, 2 * 16)

        let mask = try FeatureMask.grid(4, height: 40, width: 32)
        try NPY.write(int32: mask.ids, shape: mask.shape, to: URL(fileURLWithPath: path("mask.npy")))
        let file = try explain("feature-ablation", ["--feature-mask", path("mask.npy")], output: path("m.npy"))
        XCTAssertEqual(file.status, 0, file.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("m.npy"))), try Data(contentsOf: URL(fileURLWithPath: path("g.npy"))))
    }

    func testSamplingMethodsAreReproducibleUnderSeed() throws {
        for (method, samples, extra) in [("shapley-value-sampling", "2", []), ("kernel-shap", "6", []),
                                         ("lime", "12", ["--surrogate", "least-squares"])] {
            var outputs: [Data] = []
            for (run, seed) in [(0, "3"), (1, "3"), (2, "4")] {
                let out = path("\(method)-\(run).npy")
                let result = try explain(method, ["--grid", "2", "--samples", samples, "--seed", seed, "--json"] + extra, output: out)
                XCTAssertEqual(result.status, 0, result.stderr)
                outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
                let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
                XCTAssertEqual((report["options"] as? [String: String])?["seed"], seed, method)
            }
            XCTAssertEqual(outputs[0], outputs[1], method)
            XCTAssertNotEqual(outputs[0], outputs[2], method)
        }
    }

    func testBadOptionsAreOneLine() throws {
        for (method, extra) in [("occlusion", ["--window", "3,9"]), ("occlusion", ["--stride", "3,0,4"]),
                                ("occlusion", ["--window", "3,80,9"]), ("feature-ablation", []),
                                ("feature-ablation", ["--grid", "2", "--feature-mask", "m.npy"]),
                                ("shapley-value-sampling", ["--grid", "2", "--samples", "0"]),
                                ("kernel-shap", ["--grid", "2", "--samples", "1"]), ("lime", ["--grid", "2", "--surrogate", "ridge"])] {
            let result = try explain(method, extra, output: path("bad.npy"))
            XCTAssertNotEqual(result.status, 0, "\(method) \(extra)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(method) \(extra): \(result.stderr)")
        }
    }
}
