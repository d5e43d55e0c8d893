import Elucidate
import Foundation
import TestSupport
import XCTest

/// The library's explain workflow: options by the command line's names, the same checks and
/// messages, and the same numbers as the methods called directly.
final class ExplainerTests: TemporaryFolderTestCase {
    private var sneaker: String { packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path }

    private func builtin() throws -> (Classifier, Tensor) {
        let classifier = try ModelLoader.load(BuiltinModels.defaultName)
        return (classifier, try classifier.inputTensor(imageAt: sneaker))
    }

    // MARK: Options

    func testJSONOptionsKeepTheirTypes() throws {
        let options = try Options(json: #"{"steps": 200, "signed": true, "window": [3, 15, 15], "noise-tunnel": "vargrad", "alpha": 0.5}"#)
        XCTAssertEqual(options["steps"], .number(200))
        XCTAssertEqual(options["signed"], .bool(true))
        XCTAssertEqual(options["window"], .array([.number(3), .number(15), .number(15)]))
        XCTAssertEqual(options["window"]?.text, "3,15,15")
        XCTAssertEqual(options["noise-tunnel"], .string("vargrad"))
        XCTAssertEqual(options["alpha"]?.text, "0.5")
        XCTAssertEqual(try Options(json: nil), Options())
        XCTAssertEqual(try Options(json: "  "), Options())
    }

    func testMalformedJSONIsOneError() {
        for text in ["{", "[1, 2]", #"{"steps": null}"#, #"{"steps": {"a": 1}}"#, "\u{0}"] {
            XCTAssertThrowsError(try Options(json: text), text) { error in
                XCTAssertTrue("\(error)".contains("options must be a JSON object"), "\(error)")
            }
        }
    }

    func testUnknownAndBadOptionsAreRefusedWithTheCommandLinesMessages() {
        func message(_ method: String, _ options: [String: OptionValue]) -> String {
            do {
                _ = try ExplanationPlan(method: method, options: Options(options))
                return "accepted"
            } catch { return error.message }
        }
        XCTAssertTrue(message("saliency", ["stepz": .number(3)]).hasPrefix("unknown option 'stepz' for saliency"))
        XCTAssertEqual(message("integrated-gradients", ["steps": .number(0)]), "--steps must be at least 1 for gausslegendre")
        XCTAssertEqual(message("integrated-gradients", ["steps": .string("many")]), "--steps must be an integer, got 'many'")
        XCTAssertEqual(message("integrated-gradients", ["steps": .number(2.5)]), "--steps must be an integer, got '2.5'")
        XCTAssertEqual(message("occlusion", ["window": .string("3,0,4")]), "--window must be three positive integers C,H,W, got '3,0,4'")
        XCTAssertEqual(message("lime", ["grid": .number(2), "superpixels": .number(4)]),
                       "give exactly one of --feature-mask, --grid and --superpixels")
        XCTAssertEqual(message("saliency", ["nt-samples": .number(0)]), "--nt-samples must be at least 1")
        XCTAssertEqual(message("saliency", ["noise-tunnel": .string("smooth")]),
                       "--noise-tunnel must be one of smoothgrad, smoothgrad-sq, vargrad, got 'smooth'")
        XCTAssertEqual(message("saliency", ["seed": .number(-1)]), "--seed must be an integer ≥ 0, got '-1'")
        XCTAssertTrue(message("gradcam", [:]).hasPrefix("unknown method 'gradcam'"))
        XCTAssertEqual(message("occlusion", ["window": .array([.number(3), .number(14), .number(14)])]), "accepted")
    }

    // MARK: Explaining

    func testExplainerGivesTheMethodsOwnNumbers() throws {
        let (classifier, input) = try builtin()
        let explainer = Explainer(classifier: classifier, modelName: "builtin")
        let predicted = classifier.topClasses(logits: try classifier.logits(input), k: 1)[0][0].index

        let ig = try explainer.explain(method: "integrated-gradients", options: Options(["steps": .number(8)]), inputs: input)
        let direct = try IntegratedGradients(steps: 8).attribute(classifier, inputs: input, targets: [predicted])
        XCTAssertEqual(ig.attributions.scalars, direct.values.scalars)
        XCTAssertEqual(ig.report.inputs[0].target, predicted)
        XCTAssertEqual(ig.report.inputs[0].convergenceDelta, direct.convergenceDelta?[0])
        XCTAssertEqual(ig.report.options, ["steps": "8", "quadrature": "gausslegendre", "baseline": "zero"])
        XCTAssertEqual(ig.report.model, "builtin")

        // A window given as an array is the same window as its text.
        let asText = try explainer.explain(method: "occlusion", options: Options(["window": .string("3,14,14"), "stride": .string("3,7,7")]),
                                           inputs: input, targets: [3])
        let asArray = try explainer.explain(method: "occlusion",
                                            options: Options(["window": .array([3, 14, 14].map { .number($0) }),
                                                              "stride": .array([3, 7, 7].map { .number($0) })]),
                                            inputs: input, targets: [3])
        XCTAssertEqual(asText.attributions.scalars, asArray.attributions.scalars)
        XCTAssertEqual(asText.report.inputs[0].target, 3)
    }

    func testSeededStochasticMethodsRepeatAndReportTheirSeed() throws {
        let (classifier, input) = try builtin()
        let explainer = Explainer(classifier: classifier)
        let options = Options(["seed": .number(7), "noise-tunnel": .string("smoothgrad"), "nt-samples": .number(3)])
        let first = try explainer.explain(method: "gradient-shap", options: options, inputs: input)
        let second = try explainer.explain(method: "gradient-shap", options: options, inputs: input)
        XCTAssertEqual(first.attributions.scalars, second.attributions.scalars)
        XCTAssertEqual(first.report.options["seed"], "7")
        XCTAssertEqual(first.report.options["noise-tunnel"], "smoothgrad")
        // An unseeded stochastic run reports the seed it drew, so it can be repeated.
        let unseeded = try explainer.explain(method: "lime", options: Options(["grid": .number(2), "samples": .number(4)]), inputs: input)
        let seed = try XCTUnwrap(unseeded.report.options["seed"])
        let again = try explainer.explain(method: "lime", options: Options(["grid": .number(2), "samples": .number(4),
                                                                             "seed": .string(seed)]), inputs: input)
        XCTAssertEqual(unseeded.attributions.scalars, again.attributions.scalars)
    }

    func testTargetsByIndexLabelAndArgument() throws {
        var (classifier, input) = try builtin()
        let labels = try XCTUnwrap(classifier.labels)
        let explainer = Explainer(classifier: classifier)
        let byLabel = try explainer.explain(method: "saliency", options: Options(["target": .string(labels[7])]), inputs: input)
        XCTAssertEqual(byLabel.report.inputs[0].target, 7)
        XCTAssertEqual(byLabel.report.inputs[0].targetLabel, labels[7])
        let byIndex = try explainer.explain(method: "saliency", options: Options(["target": .number(7)]), inputs: input)
        XCTAssertEqual(byIndex.attributions.scalars, byLabel.attributions.scalars)
        // Targets given to the call win over the option.
        let given = try explainer.explain(method: "saliency", options: Options(["target": .number(2)]), inputs: input, targets: [7])
        XCTAssertEqual(given.attributions.scalars, byLabel.attributions.scalars)

        XCTAssertThrowsError(try explainer.explain(method: "saliency", options: Options(["target": .string("no such class")]),
                                                   inputs: input)) { error in
            XCTAssertTrue("\(error)".contains("is not one of the model's 10 labels"), "\(error)")
        }
        XCTAssertThrowsError(try explainer.explain(method: "saliency", inputs: input, targets: [10])) { error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        classifier.labels = nil
        XCTAssertThrowsError(try Explainer(classifier: classifier).explain(
            method: "saliency", options: Options(["target": .string(labels[7])]), inputs: input)) { error in
            XCTAssertTrue("\(error)".contains("the model has no labels"), "\(error)")
        }
    }

    func testBadInputsAreErrors() throws {
        let (classifier, input) = try builtin()
        let explainer = Explainer(classifier: classifier)
        for bad in [Tensor(zeros: [0, 3, 28, 28]), Tensor(zeros: [1, 1, 28, 28]), Tensor(zeros: [3, 28, 28]), Tensor(zeros: [])] {
            XCTAssertThrowsError(try explainer.explain(method: "saliency", inputs: bad), "\(bad.shape)")
        }
        var nan = input
        nan[0, 0, 3, 3] = .nan
        XCTAssertThrowsError(try explainer.explain(method: "saliency", inputs: nan))
        XCTAssertThrowsError(try explainer.explain(method: "saliency", inputs: input, targets: [1, 2]))
    }

    func testProgressStartsWithTheTotalAndEndsAtIt() throws {
        let (classifier, input) = try builtin()
        final class Heard: @unchecked Sendable { var calls: [(Int, Int)] = [] }
        let heard = Heard()
        _ = try Explainer(classifier: classifier).explain(
            method: "integrated-gradients", options: Options(["steps": .number(8), "internal-batch-size": .number(4)]),
            inputs: input, progress: { heard.calls.append(($0, $1)) })
        XCTAssertEqual(heard.calls.first?.0, 0)
        XCTAssertEqual(heard.calls.last?.0, heard.calls.last?.1)
        XCTAssertEqual(heard.calls.last?.1, 2)
    }

    // MARK: Pictures and reports

    func testVisualizerDrawsWhatTheSettingsDraw() throws {
        let (classifier, input) = try builtin()
        let explanation = try Explainer(classifier: classifier).explain(method: "saliency", inputs: input)
        let options = Options(["panels": .string("original-image:all,blended-heat-map:absolute-value"), "colorbar": .bool(true)])
        let out = path("picture.png")
        try Visualizer.write(attributions: explanation.attributions, input: input, classifier: classifier, options: options, to: out)
        let settings = try PictureSettings(options: options)
        let photo = try VisualizationPhoto.denormalized(input, preset: classifier.preset ?? .torchvision)
        let expected = try settings.figure(explanation.attributions, photo: photo).pngData()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), expected)

        XCTAssertThrowsError(try Visualizer.write(attributions: explanation.attributions, input: input, classifier: classifier,
                                                  options: Options(["colour": .string("red")]), to: path("x.png"))) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown option 'colour'"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.png")))
    }

    func testReportJSONDecodesBack() throws {
        let (classifier, input) = try builtin()
        let explanation = try Explainer(classifier: classifier).explain(method: "deeplift", inputs: input)
        let decoded = try JSONDecoder().decode(ExplanationReport.self, from: Data(try explanation.reportJSON().utf8))
        XCTAssertEqual(decoded.method, "deeplift")
        XCTAssertEqual(decoded.shape, [1, 3, 28, 28])
        XCTAssertEqual(decoded.inputs.count, 1)
        XCTAssertEqual(decoded.inputs[0].predicted, explanation.report.inputs[0].predicted)
    }
}
