import Elucidate
import Foundation
import TestSupport
import XCTest

/// elu_explain_dataset (Programs/dataset.c): a data-set run from C writes exactly the files
/// and index records `elucidate explain --out-dir` writes, a set cancel flag stops it cleanly
/// for a later resume, and bad arguments are status codes with messages.
final class CAPIDatasetTests: TemporaryFolderTestCase {
    private let model = "fashion-mnist-resnet"

    /// The bundled images (half in a subfolder) and a PNG cut short.
    private func images() throws -> String {
        let images = folder.appendingPathComponent("images")
        let bundled = packageRootURL.appendingPathComponent("Resources/images")
        try FileManager.default.createDirectory(at: images.appendingPathComponent("more"), withIntermediateDirectories: true)
        for (index, name) in try FileManager.default.contentsOfDirectory(atPath: bundled.path).sorted().enumerated() {
            try FileManager.default.copyItem(at: bundled.appendingPathComponent(name),
                                             to: images.appendingPathComponent(index % 2 == 0 ? name : "more/\(name)"))
        }
        try Data(contentsOf: bundled.appendingPathComponent("bag.png")).prefix(40)
            .write(to: images.appendingPathComponent("broken.png"))
        return images.path
    }

    /// Every `.npy`/`.png` under `out`, by relative path.
    private func files(_ out: String) -> [String: Data] {
        var found: [String: Data] = [:]
        for case let relative as String in FileManager.default.enumerator(atPath: path(out))!
        where relative.hasSuffix(".npy") || relative.hasSuffix(".png") {
            found[relative] = FileManager.default.contents(atPath: path("\(out)/\(relative)"))
        }
        return found
    }

    /// The index records without their times, by input.
    private func records(_ out: String) throws -> [String: IndexRecord] {
        var byInput: [String: IndexRecord] = [:]
        for var record in try BatchIndex.read(URL(fileURLWithPath: path("\(out)/index.jsonl"))) {
            record.seconds = nil
            byInput[record.input] = record
        }
        return byInput
    }

    private func summary(_ stdout: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], stdout)
    }

    func testADataSetFromCEqualsTheCommandLinesRun() throws {
        let program = try compileTestProgram("dataset")
        let folderOfImages = try images()
        let c = try run(program, [model, path("c"), "integrated-gradients", #"{"steps": 8}"#, "-", "{}", "0", folderOfImages])
        XCTAssertEqual(c.status, 0, c.stdout + c.stderr)
        let report = try summary(c.stdout)
        XCTAssertEqual(report["done"] as? Int, 6)
        XCTAssertEqual(report["failed"] as? Int, 1)
        XCTAssertEqual(report["cancelled"] as? Bool, false)
        let cli = try runElucidate(["explain", "integrated-gradients", "--steps", "8", "--model", model, folderOfImages,
                                    "--out-dir", path("cli"), "--pictures", "--quiet"])
        XCTAssertEqual(cli.status, 1, cli.stderr)  // the broken image
        XCTAssertEqual(files("c").count, 12)
        XCTAssertEqual(files("c"), files("cli"), "the C run's files differ from the command line's")
        XCTAssertEqual(try records("c"), try records("cli"))
        XCTAssertNotNil(try records("c").values.first { $0.error != nil }, "no error record for the broken image")

        let predicted = try run(program, [model, path("p"), "-", "-", #"{"images-per-batch": 4}"#, "-", "0", folderOfImages])
        XCTAssertEqual(predicted.status, 0, predicted.stdout)
        XCTAssertEqual(try records("p").count, 7)
        XCTAssertEqual(files("p"), [:])
    }

    /// A cancel flag set before the run stops it at once with a consistent index; "resume"
    /// then completes the set with the files an uninterrupted run writes.
    func testACancelledRunResumesToTheSameFiles() throws {
        let program = try compileTestProgram("dataset")
        let folderOfImages = try images()
        let stopped = try run(program, [model, path("r"), "saliency", "-", "-", "-", "1", folderOfImages])
        XCTAssertEqual(stopped.status, 0, stopped.stdout)
        XCTAssertEqual(try summary(stopped.stdout)["cancelled"] as? Bool, true)
        XCTAssertLessThan(try summary(stopped.stdout)["done"] as? Int ?? 99, 6)
        let resumed = try run(program, [model, path("r"), "saliency", "-", #"{"resume": true}"#, "-", "0", folderOfImages])
        XCTAssertEqual(resumed.status, 0, resumed.stdout)
        let whole = try run(program, [model, path("w"), "saliency", "-", "-", "-", "0", folderOfImages])
        XCTAssertEqual(whole.status, 0, whole.stdout)
        XCTAssertEqual(files("r"), files("w"))
        XCTAssertEqual(try records("r"), try records("w"))
    }

    func testMisuseIsAStatusCodeNotACrash() throws {
        let program = try compileTestProgram("dataset")
        let result = try run(program, ["misuse", model, path("m")])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains(", 0 failed"), result.stdout)
    }
}
