import Elucidate
import Foundation
import TestSupport
import XCTest

/// The built-in model from the command line: `--model` defaults to it, `elucidate models` lists it.
final class BuiltinModelCommandTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryDirectory("elucidate-builtin")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    var sneaker: String { packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path }

    func testPredictDefaultsToTheBuiltinModel() throws {
        let result = try runElucidate(["predict", sneaker, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["classes"] as? Int, 10)
        let inputs = try XCTUnwrap(json["inputs"] as? [[String: Any]])
        let top = try XCTUnwrap(inputs.first?["top"] as? [[String: Any]])
        XCTAssertEqual(top.first?["label"] as? String, "Sneaker")
    }

    func testExplainBundledSneakerWithNothingDownloaded() throws {
        let picture = folder.appendingPathComponent("out.png").path
        let attributions = folder.appendingPathComponent("ig.npy").path
        // The README's first command.
        let result = try runElucidate(["explain", "integrated-gradients", sneaker, "--visualize", picture, "--scale", "8",
                                       "--panels", "original-image:all,blended-heat-map:absolute-value",
                                       "--attributions", attributions])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("class 7 (Sneaker)"), result.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: picture))
        let values = try NPY.readFloat32(URL(fileURLWithPath: attributions))
        XCTAssertEqual(values.shape, [1, 3, 28, 28])
    }

    func testModelsListsBuiltinsAndArchitectures() throws {
        let result = try runElucidate(["models"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("fashion-mnist-resnet (default)"), result.stdout)
        XCTAssertFalse(result.stdout.contains("not installed"), result.stdout)
        for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "fastai"] {
            XCTAssertTrue(result.stdout.contains(name), name)
        }
        let json = try runElucidate(["models", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)))
    }

    func testUnknownBuiltinNameIsAMissingFile() throws {
        let result = try runElucidate(["predict", sneaker, "--model", "no-such-model"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.hasPrefix("elucidate: "), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
    }
}
