import Elucidate
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

    func testFeatureAblationWithSuperpixels() throws {
        // Pictures with regions (the deterministic noise input would make almost one segment),
        // normalised as the torchvision preset, which the model falls back to, does.
        let inputs = pictures(shape: shape, preset: .torchvision)
        let picture = path("pictures.npy")
        try NPY.write(inputs, to: URL(fileURLWithPath: picture))
        let result = try runElucidate(["explain", "feature-ablation", "--model", model, "--input-tensor", picture,
                                       "--attributions", path("s.npy"), "--superpixels", "20", "--target", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let values = try NPY.readFloat32(URL(fileURLWithPath: path("s.npy")))
        XCTAssertEqual(values.shape, shape)
        let mask = try FeatureMask.superpixels(of: inputs, preset: .torchvision, segments: 20)
        assertConstantWithinSegments(values, mask)
        let expected = try FeatureAblation(mask: mask).attribute(network, inputs: inputs, targets: [1, 1])
        XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.values.scalars), 1e-4)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let options = try XCTUnwrap(report["options"] as? [String: String])
        XCTAssertEqual(options["superpixels"], "20")
        XCTAssertEqual(options["compactness"], "10.0")
        XCTAssertNil(options["grid"])
    }

    func testSuperpixelsOfAnImageFileWithTheBuiltinModel() throws {
        let sneaker = packageRootURL.appendingPathComponent("Resources/images/sneaker.png")
        let result = try runElucidate(["explain", "shapley-value-sampling", sneaker.path, "--superpixels", "10",
                                       "--compactness", "20", "--samples", "2", "--seed", "1", "--attributions", path("v.npy")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let values = try NPY.readFloat32(URL(fileURLWithPath: path("v.npy")))
        let inputs = try Preprocessor(preset: .fashionMNIST).tensor(from: ImageDecoder.load(sneaker))
        let mask = try FeatureMask.superpixels(of: inputs, preset: .fashionMNIST, segments: 10, compactness: 20)
        assertConstantWithinSegments(values, mask)
    }

    func testSuperpixelOptionsAreChecked() throws {
        for extra in [["--grid", "2", "--superpixels", "20"], ["--superpixels", "5", "--feature-mask", "m.npy"],
                      ["--superpixels", "0"], ["--superpixels", "-3"], ["--superpixels", "5", "--compactness", "0"],
                      ["--superpixels", "5", "--compactness", "nan"], ["--grid", "2", "--compactness", "5"]] {
            let result = try explain("feature-ablation", extra, output: path("bad.npy"))
            XCTAssertNotEqual(result.status, 0, "\(extra)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(extra): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.npy")), "\(extra)")
        }
        let both = try explain("feature-ablation", ["--grid", "2", "--superpixels", "20"], output: path("bad.npy"))
        XCTAssertTrue(both.stderr.contains("exactly one of --feature-mask, --grid and --superpixels"), both.stderr)
        let zero = try explain("feature-ablation", ["--superpixels", "0"], output: path("bad.npy"))
        XCTAssertTrue(zero.stderr.contains("--superpixels must be at least 1"), zero.stderr)
    }

    /// `[N, 3, H, W]` pictures normalised by `preset`: a gradient with a bright disc and a
    /// dark bar that move from one picture to the next.
    private func pictures(shape: [Int], preset: PreprocessingPreset) -> Tensor {
        let (rows, height, width) = (shape[0], shape[2], shape[3])
        var values: [Float] = []
        for n in 0..<rows {
            for c in 0..<3 {
                for y in 0..<height {
                    for x in 0..<width {
                        var v = c == 0 ? Float(x) / Float(width) : c == 1 ? Float(y) / Float(height) : 0.4
                        let (dy, dx) = (y - height / 3 - 5 * n, x - width / 2)
                        if dy * dy + dx * dx < 49 { v = c == 2 ? 0.1 : 0.95 }
                        if y >= height - 10 && y < height - 4 && x >= 3 + 4 * n && x < width - 6 { v = 0.05 }
                        values.append((v - preset.mean[c]) / preset.std[c])
                    }
                }
            }
        }
        return Tensor(shape: shape, values: values)
    }

    /// Fails unless every row of `values` `[N, C, H, W]` is constant on each segment of its row of
    /// `mask` `[N, 1, H, W]`, and the rows have more than one segment.
    private func assertConstantWithinSegments(_ values: Tensor, _ mask: FeatureMask,
                                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(mask.shape, [values.shape[0], 1, values.shape[2], values.shape[3]], file: file, line: line)
        let plane = values.shape[2] * values.shape[3], channels = values.shape[1]
        let scalars = values.scalars
        for row in 0..<values.shape[0] {
            let ids = mask.ids[(row * plane)..<((row + 1) * plane)]
            XCTAssertGreaterThan(Set(ids).count, 1, "row \(row)", file: file, line: line)
            var valueOfSegment: [Int32: Float] = [:]
            for c in 0..<channels {
                for (i, id) in ids.enumerated() {
                    let value = scalars[(row * channels + c) * plane + i]
                    if valueOfSegment[id, default: value] != value {
                        XCTFail("row \(row): segment \(id) has values \(valueOfSegment[id]!) and \(value)", file: file, line: line)
                        return
                    }
                    valueOfSegment[id] = value
                }
            }
        }
    }
}
