import Elucidate
import Foundation
import TestSupport
import XCTest

/// The C API as a C program sees it: examples/c/check.c and examples/c/explain.c compiled
/// with `cc` against Sources/CAPI/include/elucidate.h and the built libElucidateC.so (the
/// library tools/install.sh installs as libelucidate.so), then run.
final class CAPITests: TemporaryFolderTestCase {
    /// check.c on a ResNet34 .safetensors: load, predict, Integrated Gradients, Occlusion,
    /// every kind of bad input (an error status and a message each, no crash), and saliency
    /// from 4 threads sharing the model equal bit for bit to a sequential run.
    func testCheckProgramOnResNet34() throws {
        let check = try compile("check")
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet34")!, classes: 10)
        try SafetensorsWriter.write(stateDict.tensors, metadata: [:], to: URL(fileURLWithPath: path("r34.safetensors")))
        let result = try run(check, [path("r34.safetensors"), "64"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains(", 0 failed"), result.stdout)
        XCTAssertFalse(result.stdout.contains("FAILED"), result.stdout)
    }

    /// check.c on the built-in model, found by name from the library.
    func testCheckProgramOnBuiltinModel() throws {
        let check = try compile("check")
        let result = try run(check, [BuiltinModels.defaultName, "28"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    }

    /// explain.c writes the same .npy and PNG bytes as `elucidate explain`.
    func testExplainProgramMatchesCommandLineByteForByte() throws {
        let explain = try compile("explain")
        let image = fixtureURL("images/small.png").path
        let c = try run(explain, [BuiltinModels.defaultName, image, "saliency", path("c.npy"), path("c.png")])
        XCTAssertEqual(c.status, 0, c.stderr)
        let cli = try runElucidate(["explain", "saliency", "--model", BuiltinModels.defaultName, image,
                                    "--attributions", path("cli.npy"), "--visualize", path("cli.png"), "--quiet", "--json"])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        // The report is the command line's --json but for what only the command line knows:
        // the input's file name (C passes a tensor), the output file, the EXIF rule, the time.
        func report(_ text: String) throws -> [String: AnyHashable] {
            var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            for key in ["attributions", "exif", "elapsedSeconds"] { object[key] = nil }
            var inputs = try XCTUnwrap(object["inputs"] as? [[String: Any]])
            for i in inputs.indices { inputs[i]["input"] = nil }
            object["inputs"] = inputs.map { NSDictionary(dictionary: $0) }
            return object.mapValues { ($0 as? NSObject) ?? NSNull() }
        }
        XCTAssertEqual(try report(c.stdout), try report(cli.stdout))
        for (mine, theirs) in [("c.npy", "cli.npy"), ("c.png", "cli.png")] {
            let a = try Data(contentsOf: URL(fileURLWithPath: path(mine)))
            let b = try Data(contentsOf: URL(fileURLWithPath: path(theirs)))
            XCTAssertFalse(a.isEmpty)
            XCTAssertEqual(a, b, "\(mine) differs from the command line's \(theirs)")
        }
    }

    /// An error's message is the command line's line for the same error, without "elucidate: ".
    func testErrorMessageIsTheCommandLinesLine() throws {
        let explain = try compile("explain")
        let missing = path("missing.png")
        let c = try run(explain, [BuiltinModels.defaultName, missing, "saliency", path("c.npy"), path("c.png")])
        XCTAssertNotEqual(c.status, 0)
        let cli = try runElucidate(["explain", "saliency", missing, "--attributions", path("cli.npy"), "--quiet"])
        XCTAssertNotEqual(cli.status, 0)
        let line = cli.stderr.trimmingCharacters(in: .newlines)
        XCTAssertTrue(line.hasPrefix("elucidate: "), line)
        XCTAssertEqual(c.stderr.trimmingCharacters(in: .newlines), "explain: " + line.dropFirst("elucidate: ".count))
    }

    /// A C program given only the header matches Captum: Integrated Gradients and Occlusion
    /// through `elu_explain` on a ResNet34 `.safetensors` it never saw (the goldens' weights,
    /// written here), against `tools/golden_attributions.py`'s and `tools/golden_perturbation.py`'s
    /// outputs, within AttributionParityTests' and OcclusionTests' bounds (relative L2 5e-3 for
    /// the gradients, whose float32 ReLU flips near zero move a few pixels; 1e-3 for occlusion).
    func testCProgramMatchesCaptum() throws {
        let parity = try compile("parity", source: packageRootURL.appendingPathComponent("Tests/CAPITests/Programs/parity.c"))
        let weights = path("r34-1000.safetensors")
        try SafetensorsWriter.write(DeterministicWeights.stateDict(ResNetArchitecture.named("resnet34")!, classes: 1000).tensors,
                                    metadata: [:], to: URL(fileURLWithPath: weights))
        let input = DeterministicWeights.input(key: "input", shape: [1, 3, 224, 224])
        let inputFile = path("input.f32")
        try input.withUnsafeBufferPointer { try Data(buffer: $0).write(to: URL(fileURLWithPath: inputFile)) }
        // (golden, method, options_json, bound): the goldens' own settings.
        let cases = [
            ("attributions/r34_ig_gausslegendre.npy", "integrated-gradients", #"{"steps": 16, "internal-batch-size": 8}"#, 5e-3),
            ("perturbation/r34_occlusion.npy", "occlusion", #"{"window": [3, 45, 45], "stride": [3, 40, 40], "baseline": 0}"#, 1e-3),
            // Layer-reading methods whose attributions have the input's shape (tools/golden_layers.py).
            ("layers/r34_guided_grad_cam_layer4.npy", "guided-grad-cam", #"{"layer": "layer4"}"#, 1e-3),
            ("layers/r34_neuron_gradient_layer4.npy", "neuron-gradient", #"{"layer": "layer4", "neuron": [12, 3, 4]}"#, 1e-3),
            // LRP against Zennit 0.5.1 (tools/golden_cam.py), the issue's bound.
            ("cam/r34_lrp_epsilon_plus_flat.npy", "lrp", #"{"composite": "epsilon-plus-flat"}"#, 5e-3),
            ("cam/r34_lrp_epsilon_gamma_box.npy", "lrp", #"{"composite": "epsilon-gamma-box", "low": "-2.1179039478302,-2.0357141494750977,-1.804444432258606", "high": "2.248908281326294,2.4285714626312256,2.640000104904175"}"#, 5e-3),
        ]
        for (golden, method, options, bound) in cases {
            let out = path("\(URL(fileURLWithPath: golden).lastPathComponent).f32")
            let result = try run(parity, [weights, inputFile, "1", "3", "224", "224", method, options, "264", out])
            XCTAssertEqual(result.status, 0, "\(method): \(result.stderr)")
            let values = try Data(contentsOf: URL(fileURLWithPath: out)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let expected = try NPY.readFloat32(fixtureURL(golden))
            XCTAssertEqual(values.count, expected.count, method)
            let error = relativeL2Error(values, expected.scalars)
            XCTAssertLessThanOrEqual(error, bound, "\(method) \(options) through the C API: relative L2 error \(error) vs the golden")
            print("\(method) through the C API: relative L2 error vs its golden \(error)")
            XCTAssertTrue(result.stdout.contains("\"method\" : \"\(method)\""), result.stdout)
        }
    }
}
