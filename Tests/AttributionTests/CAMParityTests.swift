import Elucidate
import Foundation
import TestSupport
import XCTest

/// pytorch-grad-cam 1.5.7's CAMs against its golden maps (`tools/golden_cam.py`,
/// `Tests/Fixtures/cam/`), run through the workflow (`Explainer`) by CLI name: the raw map
/// (`--attributions`, `[N, 1, h, w]`) and the final map after `CAMPostprocessing.final`, both
/// within relative L2 1e-3. EigenCAM's raw map is compared up to sign (an SVD vector's sign is
/// arbitrary), and its final map is made from the raw map of the golden's sign.
final class CAMParityTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let library: String
        let arch: String
        let num_classes: Int
        let input: GoldenInput
        let method: String
        let layer: String?
        let options: [String: OptionValue]
        let targets: [Int]?
        let raw_output: String?
        let final_output: String?
    }

    static let cases: [Case] = try! goldenCases("cam/manifest.json")

    /// The case's classifier, built once per architecture and class count (`DeterministicClassifier`).
    func classifier(_ goldenCase: Case) throws -> Classifier {
        try DeterministicClassifier.classifier(goldenCase.arch, classes: goldenCase.num_classes)
    }

    func check(_ method: String, tolerance: Double = 1e-3, file: StaticString = #filePath, line: UInt = #line) throws {
        let selected = Self.cases.filter { $0.method == method && $0.library.hasPrefix("pytorch-grad-cam") }
        XCTAssertFalse(selected.isEmpty, "no golden case for \(method)", file: file, line: line)
        for goldenCase in selected {
            let explainer = Explainer(classifier: try classifier(goldenCase))
            let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
            var options: [String: OptionValue] = ["layer": .string(goldenCase.layer ?? "")]
            for (name, value) in goldenCase.options { options[name] = value }
            let start = Date()
            let explanation = try explainer.explain(method: method, options: Options(options), inputs: input,
                                                    targets: goldenCase.targets)
            let seconds = Date().timeIntervalSince(start)
            let expectedRaw = try NPY.readFloat32(fixtureURL("cam/\(try XCTUnwrap(goldenCase.raw_output))"))
            var raw = explanation.attributions
            XCTAssertEqual(raw.shape, expectedRaw.shape, goldenCase.name, file: file, line: line)
            var rawError = relativeL2Error(raw.scalars, expectedRaw.scalars)
            if method == "eigen-cam" {
                let flipped = raw.map { -$0 }
                let flippedError = relativeL2Error(flipped.scalars, expectedRaw.scalars)
                if flippedError < rawError { (raw, rawError) = (flipped, flippedError) }
            }
            let expectedFinal = try NPY.readFloat32(fixtureURL("cam/\(try XCTUnwrap(goldenCase.final_output))"))
            let final = CAMPostprocessing.final(raw: raw, inputSize: input.shape)
            XCTAssertEqual(final.shape, [input.shape[0], 1, input.shape[2], input.shape[3]], goldenCase.name, file: file, line: line)
            let finalError = relativeL2Error(final.scalars, expectedFinal.scalars)
            print("cam parity \(goldenCase.name): raw relative L2 \(String(format: "%.3g", rawError)), final \(String(format: "%.3g", finalError)) (\(String(format: "%.1f", seconds)) s)")
            XCTAssertLessThanOrEqual(rawError, tolerance, "\(goldenCase.name) raw", file: file, line: line)
            XCTAssertLessThanOrEqual(finalError, tolerance, "\(goldenCase.name) final", file: file, line: line)
        }
    }

    /// pytorch-grad-cam's GradCAM is Captum's LayerGradCam's map (no ReLU) before its post-processing.
    func testGradCam() throws { try check("grad-cam") }
    func testGradCamPlusPlus() throws { try check("grad-cam-plus-plus") }
    func testXGradCam() throws { try check("xgrad-cam") }
    func testHiResCam() throws { try check("hires-cam") }
    func testLayerCam() throws { try check("layer-cam") }
    func testEigenCam() throws { try check("eigen-cam") }
    func testScoreCam() throws { try check("score-cam") }
    func testAblationCam() throws { try check("ablation-cam") }
}
