import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate evaluate` over a data set — folders, a manifest, several images — on the built-in
/// model: every input's row equals its run alone (the library computes each map without the
/// inputs beside it, whatever `--images-per-batch`), the mean, spread and count are those rows',
/// a manifest's targets are used, and a data set that cannot be read is one line on stderr.
final class EvaluateDataSetCommandTests: TemporaryFolderTestCase {
    private let bundled = packageRootURL.appendingPathComponent("Resources/images")

    /// The bundled images in `name`, every other one in a subfolder (the walk's order), and the
    /// paths the walk names them by, in that order.
    private func dataSet(_ name: String = "images", count: Int = 6) throws -> (folder: String, images: [String]) {
        let root = folder.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("more"), withIntermediateDirectories: true)
        var images: [String] = []
        for (index, file) in try FileManager.default.contentsOfDirectory(atPath: bundled.path).sorted().prefix(count).enumerated() {
            let relative = index % 2 == 0 ? file : "more/\(file)"
            try FileManager.default.copyItem(at: bundled.appendingPathComponent(file), to: root.appendingPathComponent(relative))
            images.append(root.appendingPathComponent(relative).path)
        }
        // The walk goes through a folder's names in order: "more" sorts among the files.
        let walked = try InputDiscovery.found(paths: [root.path]).map(\.path)
        XCTAssertEqual(Set(walked), Set(images))
        return (root.path, walked)
    }

    private func rows(_ report: [String: Any]) throws -> [[String: Any]] { try XCTUnwrap(report["inputs"] as? [[String: Any]]) }

    /// `values`' mean and population standard deviation, and the bound on how far a sum of them
    /// in another order may round away: n·ε·max|x| (each of the n additions rounds by at most ε
    /// relative to a partial sum no larger than n·max|x|, divided back by n).
    private func spread(_ values: [Double]) -> (mean: Double, deviation: Double, tolerance: Double) {
        let mean = values.reduce(0, +) / Double(values.count)
        let deviation = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        return (mean, deviation, Double(values.count) * Double.ulpOfOne * (values.map(abs).max() ?? 0))
    }

    func testAFoldersMeanIsTheMeanOfThePerImageRuns() throws {
        let (folder, images) = try dataSet()
        let arguments = ["deletion", folder, "--method", "saliency", "--steps", "7"]
        let whole = try evaluateJSON(arguments + ["--images-per-batch", "4"])
        let folderRows = try rows(whole)
        XCTAssertEqual(folderRows.compactMap { $0["input"] as? String }, images)
        var aucs: [Double] = []
        for (image, row) in zip(images, folderRows) {
            let alone = try rows(try evaluateJSON(["deletion", image, "--method", "saliency", "--steps", "7"]))[0]
            // Each input's map is the one it gets alone: the same curve to the last bit.
            XCTAssertEqual(row["curve"] as? [Double], alone["curve"] as? [Double], image)
            XCTAssertEqual(row["target"] as? Int, alone["target"] as? Int, image)
            aucs.append(try XCTUnwrap(alone["auc"] as? Double))
        }
        let expected = spread(aucs)
        XCTAssertEqual(try XCTUnwrap(whole["mean"] as? Double), expected.mean, accuracy: expected.tolerance)
        XCTAssertEqual(try XCTUnwrap(whole["standardDeviation"] as? Double), expected.deviation, accuracy: 1e-12)
        XCTAssertEqual(whole["count"] as? Int, images.count)
        // Chunks of one give the same rows as chunks of four.
        let single = try evaluateJSON(arguments + ["--images-per-batch", "1"])
        XCTAssertEqual(try rows(single).map { $0["auc"] as? Double }, folderRows.map { $0["auc"] as? Double })

        // Sensitivity-max draws its noise per input from the seed: the same per input, alone or not.
        let sensitivity = try evaluateJSON(["sensitivity-max", folder, "--method", "saliency", "--samples", "2", "--seed", "3",
                                            "--images-per-batch", "2"])
        let alone = try rows(try evaluateJSON(["sensitivity-max", images[1], "--method", "saliency", "--samples", "2",
                                               "--seed", "3"]))[0]
        XCTAssertEqual(try rows(sensitivity)[1]["sensitivity-max"] as? Double, alone["sensitivity-max"] as? Double)
    }

    func testSanityAndCompareOverAFolder() throws {
        let (folder, images) = try dataSet(count: 2)
        let sanity = try evaluateJSON(["sanity", folder, "--method", "saliency", "--seed", "1", "--images-per-batch", "1"])
        XCTAssertEqual(sanity["count"] as? Int, 2)
        var finals: [Double] = []
        for image in images {
            let alone = try evaluateJSON(["sanity", image, "--method", "saliency", "--seed", "1"])
            finals.append(try XCTUnwrap((alone["layers"] as? [[String: Any]])?.last?["spearmanAbs"] as? Double))
        }
        let last = try XCTUnwrap((sanity["layers"] as? [[String: Any]])?.last)
        let expected = spread(finals)
        XCTAssertEqual(try XCTUnwrap(last["spearmanAbs"] as? Double), expected.mean, accuracy: expected.tolerance)
        XCTAssertEqual(try XCTUnwrap(last["spearmanAbsStandardDeviation"] as? Double), expected.deviation, accuracy: 1e-12)
        XCTAssertEqual(last["count"] as? Int, 2)

        let compare = try evaluateJSON(["compare", folder, "--methods", "saliency", "--seed", "1"])
        XCTAssertEqual(compare["count"] as? Int, 2)
        let row = try XCTUnwrap((compare["methods"] as? [[String: Any]])?.first)
        let perInput = try XCTUnwrap(row["inputs"] as? [[String: Any]])
        XCTAssertEqual(perInput.compactMap { $0["input"] as? String }, images)
        let alone = try evaluateJSON(["compare", images[0], "--methods", "saliency", "--seed", "1"])
        let aloneRow = try XCTUnwrap((alone["methods"] as? [[String: Any]])?.first)
        for key in ["deletion", "insertion", "infidelity", "sensitivityMax", "sanitySpearmanAbs"] {
            XCTAssertEqual(perInput[0][key] as? Double, aloneRow[key] as? Double, key)
            let values = try perInput.map { try XCTUnwrap($0[key] as? Double) }
            let spreadOfKey = try XCTUnwrap((row["spread"] as? [String: [String: Any]])?[key])
            XCTAssertEqual(try XCTUnwrap(row[key] as? Double), spread(values).mean, accuracy: spread(values).tolerance, key)
            XCTAssertEqual(try XCTUnwrap(spreadOfKey["standardDeviation"] as? Double), spread(values).deviation, accuracy: 1e-12)
            XCTAssertEqual(spreadOfKey["count"] as? Int, 2)
        }
        let table = try runElucidate(["evaluate", "compare", folder, "--methods", "saliency", "--seed", "1",
                                      "--model", "fashion-mnist-resnet"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("  ± sd"), table.stdout)
        XCTAssertTrue(table.stdout.contains("\(images[1]): saliency: class "), table.stdout)
    }

    func testAManifestsTargetsAreUsed() throws {
        let (folder, _) = try dataSet()
        let manifest = folder + "/list.txt"
        // bag.png as class 3, ankle-boot.png by its label, dress.png with the run's --target.
        try "more/bag.png\t3\n# a comment\ndress.png\nankle-boot.png\tSneaker\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        let report = try evaluateJSON(["insertion", "--manifest", manifest, "--method", "saliency", "--steps", "7",
                                       "--target", "5"])
        let found = try rows(report)
        XCTAssertEqual(found.compactMap { $0["input"] as? String },
                       ["more/bag.png", "dress.png", "ankle-boot.png"].map { folder + "/" + $0 })
        XCTAssertEqual(found.compactMap { $0["target"] as? Int }, [3, 5, 7])
        let alone = try rows(try evaluateJSON(["insertion", folder + "/more/bag.png", "--method", "saliency", "--steps", "7",
                                               "--target", "3"]))[0]
        XCTAssertEqual(found[0]["auc"] as? Double, alone["auc"] as? Double)
        let table = try runElucidate(["evaluate", "insertion", "--manifest", manifest, "--method", "saliency", "--steps", "7",
                                      "--model", "fashion-mnist-resnet"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("/more/bag.png: class 3 (Dress), auc "), table.stdout)
        XCTAssertTrue(table.stdout.contains("over 3 input(s)"), table.stdout)
    }

    func testADataSetThatCannotBeReadIsOneLine() throws {
        let empty = folder.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try "not an image".write(toFile: empty + "/notes.txt", atomically: true, encoding: .utf8)
        let (images, _) = try dataSet()
        let outOfRange = path("out-of-range.txt")
        try "\(images)/more/bag.png\t99\n".write(toFile: outOfRange, atomically: true, encoding: .utf8)
        let broken = folder.appendingPathComponent("broken").path
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try Data(contentsOf: bundled.appendingPathComponent("bag.png")).prefix(40).write(to: URL(fileURLWithPath: broken + "/cut.png"))
        let cases: [([String], String)] = [
            (["deletion", empty, "--method", "saliency"], "no PNG or JPEG images in the inputs given"),
            (["sanity", empty, "--method", "saliency"], "no PNG or JPEG images in the inputs given"),
            (["compare", empty, "--methods", "saliency"], "no PNG or JPEG images in the inputs given"),
            (["deletion", "--manifest", path("missing.txt"), "--method", "saliency"], "missing.txt"),
            (["deletion", "--manifest", outOfRange, "--method", "saliency"], "target 99 is out of range"),
            (["deletion", broken, "--method", "saliency"], "cut.png"),
            (["deletion", images, "--method", "saliency", "--images-per-batch", "0"], "--images-per-batch must be at least 1"),
        ]
        for (arguments, message) in cases {
            let result = try runElucidate(["evaluate"] + arguments + ["--model", "fashion-mnist-resnet"])
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertEqual(result.stdout, "")
        }
    }
}
