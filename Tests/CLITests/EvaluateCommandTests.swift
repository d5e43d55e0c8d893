import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate evaluate ARGUMENTS --json` on the built-in model, which must succeed: its report.
func evaluateJSON(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let result = try runElucidate(["evaluate"] + arguments + ["--json", "--model", "fashion-mnist-resnet"])
    XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
    return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], file: file, line: line)
}

/// `elucidate evaluate` on the built-in model and the bundled images: every metric runs, the
/// JSON has the documented keys, and bad options end as one line on stderr with a non-zero exit.
final class EvaluateCommandTests: TemporaryFolderTestCase {
    var bag: String { packageRootURL.appendingPathComponent("Resources/images/bag.png").path }
    var dress: String { packageRootURL.appendingPathComponent("Resources/images/dress.png").path }

    func json(_ arguments: [String]) throws -> [String: Any] { try evaluateJSON(arguments) }

    func testDeletionAndInsertionReportCurvesAndAUCs() throws {
        for metric in ["deletion", "insertion"] {
            let report = try json([metric, bag, dress, "--method", "saliency", "--steps", "14"])
            XCTAssertEqual(report["metric"] as? String, metric)
            XCTAssertEqual(report["method"] as? String, "saliency")
            let options = try XCTUnwrap(report["options"] as? [String: String])
            XCTAssertEqual(options["baseline"], metric == "deletion" ? "0" : "blur")
            let inputs = try XCTUnwrap(report["inputs"] as? [[String: Any]])
            XCTAssertEqual(inputs.count, 2)
            for input in inputs {
                let curve = try XCTUnwrap(input["curve"] as? [Double])
                XCTAssertEqual(curve.count, 15)
                let auc = try XCTUnwrap(input["auc"] as? Double)
                XCTAssertTrue((0...1).contains(auc), "\(auc)")
            }
            XCTAssertNotNil(report["mean"] as? Double)
            XCTAssertGreaterThan(try XCTUnwrap(report["standardDeviation"] as? Double), 0)  // two different images
            XCTAssertGreaterThan(try XCTUnwrap(report["imagesPerSecond"] as? Double), 0)
        }
    }

    func testGivenAttributionsAndCaptumMetrics() throws {
        let attributions = path("saliency.npy")
        let explained = try runElucidate(["explain", "saliency", bag, "--attributions", attributions, "--quiet"])
        XCTAssertEqual(explained.status, 0, explained.stderr)
        let deletion = try json(["deletion", bag, "--attributions", attributions, "--baseline", "0.5", "--steps", "7"])
        XCTAssertEqual(deletion["attributions"] as? String, attributions)
        XCTAssertNil(deletion["method"])
        let infidelity = try json(["infidelity", bag, "--attributions", attributions, "--samples", "4", "--seed", "1", "--normalize"])
        let row = try XCTUnwrap((infidelity["inputs"] as? [[String: Any]])?.first)
        XCTAssertNotNil(row["infidelity"] as? Double)
        XCTAssertNil(infidelity["imagesPerSecond"])
        let sensitivity = try json(["sensitivity-max", bag, "--method", "saliency", "--samples", "3", "--seed", "2"])
        let sensitivityRow = try XCTUnwrap((sensitivity["inputs"] as? [[String: Any]])?.first)
        XCTAssertNotNil(sensitivityRow["sensitivity-max"] as? Double)
        // The same seed gives the same numbers.
        let again = try json(["sensitivity-max", bag, "--method", "saliency", "--samples", "3", "--seed", "2"])
        XCTAssertEqual((again["inputs"] as? [[String: Any]])?.first?["sensitivity-max"] as? Double,
                       sensitivityRow["sensitivity-max"] as? Double)
    }

    func testTableNamesTheScore() throws {
        let result = try runElucidate(["evaluate", "insertion", bag, "--method", "saliency", "--steps", "7"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("class 8 (Bag), auc "), result.stdout)
    }

    func testBadOptionsAreOneLineErrors() throws {
        let attributions = path("a.npy")
        try NPY.write(Tensor(zeros: [1, 1, 28, 28]), to: URL(fileURLWithPath: attributions))
        let inputShaped = path("input-shaped.npy")  // the built-in model takes 3 channels
        try NPY.write(Tensor(zeros: [1, 3, 28, 28]), to: URL(fileURLWithPath: inputShaped))
        let cases: [([String], String)] = [
            (["deletion", bag, "--method", "saliency", "--steps", "0"], "--steps must be at least 1"),
            (["deletion", bag], "give --attributions FILE.npy or --method NAME"),
            (["deletion", bag, "--method", "saliency", "--attributions", attributions], "not both"),
            (["deletion", bag, "--method", "nosuch"], "unknown method 'nosuch'"),
            (["insertion", bag, "--method", "saliency", "--baseline", "grey"], "--baseline must be 0, a number, blur or a .npy file"),
            (["infidelity", bag, "--attributions", attributions, "--perturbations", attributions, "--seed", "1"], "do not apply"),
            (["sensitivity-max", bag, "--attributions", attributions], "give --method NAME"),
            (["deletion", bag, "--method", "saliency", "--method-options", "{\"stepz\": 3}"], "unknown option 'stepz'"),
            (["infidelity", bag, "--attributions", attributions, "--perturbations", path("missing.npy")], "missing.npy"),
            (["infidelity", bag, "--attributions", attributions, "--noise-stdev", "-1"], "--noise-stdev must be a number ≥ 0"),
            (["deletion", bag, "--method", "saliency", "--steps", "1000000000000"], "--steps must be at most the number of pixels (784)"),
            (["infidelity", bag, "--attributions", inputShaped, "--samples", "4000000000000"], "needs more memory for the perturbations"),
            (["sensitivity-max", bag, "--method", "saliency", "--samples", "4000000000000"], "needs more memory for the perturbations"),
        ]
        for (arguments, message) in cases {
            let result = try runElucidate(["evaluate"] + arguments)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertEqual(result.stdout, "")
        }
    }

    func testPlotDrawsTheCurvesAndSparesInputs() throws {
        let plot = path("curves.png")
        let result = try runElucidate(["evaluate", "deletion", bag, dress, "--method", "saliency", "--steps", "7", "--plot", plot])
        XCTAssertEqual(result.status, 0, result.stderr)
        let canvas = try PNGWriter.read(URL(fileURLWithPath: plot))
        XCTAssertEqual(canvas.width, 480)
        let attributions = path("a.npy")
        try NPY.write(Tensor(zeros: [1, 1, 28, 28]), to: URL(fileURLWithPath: attributions))
        let refused = try runElucidate(["evaluate", "insertion", bag, "--attributions", attributions, "--plot", attributions])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("refusing to overwrite an input file"), refused.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: attributions)).shape, [1, 1, 28, 28])
    }

    func testMismatchedAttributionsAreRefused() throws {
        let attributions = path("small.npy")
        try NPY.write(Tensor(zeros: [1, 1, 7, 7]), to: URL(fileURLWithPath: attributions))
        let result = try runElucidate(["evaluate", "deletion", bag, "--attributions", attributions])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("do not cover the input's 28×28 pixels"), result.stderr)
    }
}

/// `elucidate evaluate sanity` on the built-in model.
final class EvaluateSanityCommandTests: TemporaryFolderTestCase {
    var bag: String { packageRootURL.appendingPathComponent("Resources/images/bag.png").path }

    func testSanityReportsEveryStage() throws {
        let report = try evaluateJSON(["sanity", bag, "--method", "guided-backprop", "--seed", "1"])
        XCTAssertEqual(report["seed"] as? String, "1")
        let layers = try XCTUnwrap(report["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.compactMap { $0["layer"] as? String }, ["fc", "layer4", "layer3", "layer2", "layer1", "conv1"])
        for layer in layers {
            for key in ["spearman", "spearmanAbs", "ssim"] { XCTAssertNotNil(layer[key] as? Double, key) }
        }
        let table = try runElucidate(["evaluate", "sanity", bag, "--method", "saliency", "--seed", "1", "--plot", path("s.png")])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertEqual(try PNGWriter.read(URL(fileURLWithPath: path("s.png"))).width, 6 + 7 * (84 + 6))  // 28 px × 3
        XCTAssertTrue(table.stdout.contains("up to conv1: Spearman"), table.stdout)
    }

    func testSanityRefusesWhatItCannotUse() throws {
        for (arguments, message) in [
            (["sanity", bag], "give --method NAME"),
            (["sanity", bag, "--method", "saliency", "--batch-size", "3"], "--batch-size does not apply"),
            (["sanity", bag, "--method", "saliency", "--target", "-2"], "--target must be"),
        ] {
            let result = try runElucidate(["evaluate"] + arguments)
            XCTAssertNotEqual(result.status, 0)
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        }
    }
}

/// `elucidate evaluate compare`: one row per method, every metric.
final class EvaluateCompareCommandTests: XCTestCase {
    var bag: String { packageRootURL.appendingPathComponent("Resources/images/bag.png").path }

    func testCompareRanksMethodsOnEveryMetric() throws {
        let report = try evaluateJSON(["compare", bag, "--methods", "saliency,input-x-gradient", "--seed", "1"])
        let rows = try XCTUnwrap(report["methods"] as? [[String: Any]])
        XCTAssertEqual(rows.compactMap { $0["method"] as? String }, ["saliency", "input-x-gradient"])
        for row in rows {
            for key in ["deletion", "insertion", "infidelity", "sensitivityMax", "sanitySpearmanAbs"] {
                XCTAssertNotNil(row[key] as? Double, key)
            }
        }
        let table = try runElucidate(["evaluate", "compare", bag, "--methods", "saliency", "--seed", "1"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.hasPrefix("method"), table.stdout)
    }

    func testCompareRefusesBadMethodsAndLayerMaps() throws {
        let unknown = try runElucidate(["evaluate", "compare", bag, "--methods", "saliency,nosuch"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("unknown method 'nosuch'"), unknown.stderr)
        // Methods run with their defaults: a layer method, which needs --layer, is refused up front.
        let layer = try runElucidate(["evaluate", "compare", bag, "--methods", "grad-cam", "--seed", "1"])
        XCTAssertNotEqual(layer.status, 0)
        XCTAssertTrue(layer.stderr.contains("grad-cam needs --layer"), layer.stderr)
        XCTAssertEqual(layer.stderr.split(separator: "\n").count, 1, layer.stderr)
    }
}
