import Elucidate
import Foundation
import TestSupport
import XCTest

/// elu_evaluate (Programs/evaluate.c): a C program's report is the command line's `evaluate
/// METRIC --json` for the same images — with given maps, with a method, for the sanity check and
/// for compare — and bad arguments are status codes with messages, never a crash.
final class CAPIEvaluateTests: TemporaryFolderTestCase {
    private let model = "fashion-mnist-resnet"
    private var images: [String] {
        ["bag.png", "dress.png"].map { packageRootURL.appendingPathComponent("Resources/images/\($0)").path }
    }

    /// The report without what only one side knows: the inputs' names (C passes a tensor, the
    /// command line names image files), the attributions file and the times.
    private func report(_ text: String) throws -> NSDictionary {
        func strip(_ value: Any) -> Any {
            if let object = value as? [String: Any] {
                var kept: [String: Any] = [:]
                for (key, value) in object where !["input", "attributions", "elapsedSeconds", "imagesPerSecond"].contains(key) {
                    kept[key] = strip(value)
                }
                return NSDictionary(dictionary: kept)
            }
            if let array = value as? [Any] { return array.map(strip) as NSArray }
            return value
        }
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
        return try XCTUnwrap(strip(object) as? NSDictionary)
    }

    /// `evaluate.c`'s report for `metric` with `options` and maps `attributions` (raw) or a method.
    private func c(_ metric: String, _ options: String, attributions: String = "-", images: [String]) throws -> NSDictionary {
        let program = try compileTestProgram("evaluate")
        let result = try run(program, [model, metric, options, attributions, "3", "28", "28"] + images)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        return try report(result.stdout)
    }

    private func cli(_ arguments: [String]) throws -> NSDictionary {
        let result = try runElucidate(["evaluate"] + arguments + ["--model", model, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try report(result.stdout)
    }

    func testDeletionOfGivenMapsEqualsTheCommandLine() throws {
        let npy = path("saliency.npy")
        let explained = try runElucidate(["explain", "saliency", "--model", model] + images + ["--attributions", npy, "--quiet"])
        XCTAssertEqual(explained.status, 0, explained.stderr)
        let raw = try writeRaw(try NPY.readFloat32(URL(fileURLWithPath: npy)), "saliency.raw")
        let fromC = try c("deletion", #"{"steps": 14}"#, attributions: raw, images: images)
        XCTAssertEqual(fromC, try cli(["deletion"] + images + ["--attributions", npy, "--steps", "14"]))
        XCTAssertEqual(fromC["count"] as? Int, 2)
        XCTAssertEqual((fromC["inputs"] as? [[String: Any]])?.first?["curve"] as? [Double] != nil, true)
    }

    func testDeletionWithAMethodEqualsTheCommandLine() throws {
        let options = #"{"method": "integrated-gradients", "method-options": "{\"steps\": 4}", "steps": 14}"#
        XCTAssertEqual(try c("deletion", options, images: images),
                       try cli(["deletion"] + images + ["--method", "integrated-gradients", "--method-options", #"{"steps": 4}"#,
                                                        "--steps", "14"]))
        XCTAssertEqual(try c("insertion", #"{"method": "saliency", "steps": 7, "images-per-batch": 1}"#, images: images),
                       try cli(["insertion"] + images + ["--method", "saliency", "--steps", "7"]))
    }

    func testSanityAndCompareEqualTheCommandLine() throws {
        let bag = [images[0]]
        XCTAssertEqual(try c("sanity", #"{"method": "saliency", "seed": 1}"#, images: bag),
                       try cli(["sanity"] + bag + ["--method", "saliency", "--seed", "1"]))
        XCTAssertEqual(try c("compare", #"{"methods": ["saliency", "input-x-gradient"], "seed": 2}"#, images: bag),
                       try cli(["compare"] + bag + ["--methods", "saliency,input-x-gradient", "--seed", "2"]))
    }

    func testMisuseIsAStatusCodeNotACrash() throws {
        let program = try compileTestProgram("evaluate")
        let result = try run(program, ["misuse", model])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains(", 0 failed"), result.stdout)
    }
}
