import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, item 8: a phone JPEG stored 224 wide × 112 high with EXIF orientation 6 (a viewer
/// shows it 112 wide × 224 high) was explained as stored, silently. The default stays (it is what
/// `PIL.Image.open` and torchvision give), but the JSON report says which rule was used and that
/// the image records an orientation, text runs note it on stderr, and `--exif apply` turns the
/// image as Pillow's `ImageOps.exif_transpose` does, in predict, explain and visualize alike.
final class ExifCommandTests: TemporaryFolderTestCase {
    let phone = packageRootURL.appendingPathComponent("Tests/Fixtures/exif/phone_o6.jpg").path
    let sneaker = packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path

    private func json(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], file: file, line: line)
    }

    private func firstInput(_ report: [String: Any]) -> [String: Any] {
        (report["inputs"] as? [[String: Any]])?.first ?? [:]
    }

    func testTheDefaultUsesThePixelsAsStoredAndSaysSo() throws {
        let out = path("stored.npy")
        var report = try json(runElucidate(["explain", "saliency", phone, "--preset", "none", "--attributions", out, "--json"]))
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: out)).shape, [1, 3, 112, 224], "as stored")
        XCTAssertEqual(report["exif"] as? String, "ignore")
        XCTAssertEqual(firstInput(report)["exifOrientation"] as? Int, 6)

        report = try json(runElucidate(["predict", phone, "--json"]))
        XCTAssertEqual(report["exif"] as? String, "ignore")
        XCTAssertEqual(firstInput(report)["exifOrientation"] as? Int, 6)

        // Text reports note it on stderr; images without an orientation have nothing to say.
        let text = try runElucidate(["predict", phone, sneaker])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stderr, "note: \(phone) records EXIF orientation 6; it is used as stored, "
                       + "not as a photo viewer shows it (--exif apply turns it)\n")
        report = try json(runElucidate(["predict", sneaker, "--json"]))
        XCTAssertEqual(report["exif"] as? String, "ignore")
        XCTAssertNil(firstInput(report)["exifOrientation"])
    }

    func testApplyTurnsTheImageAsAPhotoViewerShowsIt() throws {
        let out = path("applied.npy")
        var report = try json(runElucidate(["explain", "saliency", phone, "--preset", "none", "--exif", "apply",
                                            "--attributions", out, "--json", "--visualize", path("applied.png")]))
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: out)).shape, [1, 3, 224, 112], "turned 90° clockwise")
        XCTAssertEqual(report["exif"] as? String, "apply")
        XCTAssertNil(firstInput(report)["exifOrientation"])
        report = try json(runElucidate(["predict", phone, "--exif", "apply", "--json"]))
        XCTAssertEqual(report["exif"] as? String, "apply")

        // visualize --image draws the photo the same way, pixel for pixel Pillow's exif_transpose.
        let picture = path("photo.png")
        var result = try runElucidate(["visualize", out, "--image", phone, "--preset", "none", "--exif", "apply",
                                       "--panels", "original-image:all", "--out", picture])
        XCTAssertEqual(result.status, 0, result.stderr)
        let drawn = try ImageDecoder.load(URL(fileURLWithPath: picture))
        XCTAssertEqual(drawn, try ImageDecoder.load(URL(fileURLWithPath: phone), exif: .apply))
        XCTAssertEqual([drawn.width, drawn.height], [112, 224])
        // Without it, the stored photo does not fit the turned attributions, and the message says why.
        result = try runElucidate(["visualize", out, "--image", phone, "--preset", "none", "--out", picture])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasSuffix("(were they made with --exif apply? give it here too)\n"), result.stderr)
    }

    func testTheRuleIsValidated() throws {
        let x = path("x.npy")
        try NPY.write(Tensor(zeros: [1, 3, 28, 28]), to: URL(fileURLWithPath: x))
        for (arguments, expected) in [
            (["predict", phone, "--exif", "sideways"], "The value 'sideways' is invalid for '--exif <rule>'. Please provide one of 'ignore' and 'apply'."),
            (["predict", "--input-tensor", x, "--exif", "apply"], "--exif does not apply to --input-tensor, which is already preprocessed"),
            (["visualize", x, "--exif", "apply", "--out", path("v.png")], "--exif applies only to --image"),
        ] {
            let result = try runElucidate(arguments)
            XCTAssertEqual(result.status, 64, result.stderr)
            XCTAssertTrue(result.stderr.contains(expected), result.stderr)
        }
        // An input tensor has no EXIF: the report records no rule.
        let report = try json(runElucidate(["predict", "--input-tensor", x, "--json"]))
        XCTAssertNil(report["exif"])
    }
}
