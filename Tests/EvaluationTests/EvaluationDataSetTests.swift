import Elucidate
import Foundation
import TestSupport
import XCTest

/// `Evaluator` over a data set (`EvaluationInputs`): chunks never change a score, images from a
/// manifest give what the same rows as a tensor give, and the report's mean, spread and count
/// are its rows'.
final class EvaluationDataSetTests: XCTestCase {
    private let bundled = packageRootURL.appendingPathComponent("Resources/images")
    private let names = ["bag.png", "dress.png", "sneaker.png"]

    private func classifier() throws -> Classifier { try ModelLoader.load(BuiltinModels.defaultName) }

    func testChunksAndSourcesDoNotChangeAScore() throws {
        let classifier = try classifier()
        let evaluator = Evaluator(classifier: classifier)
        let paths = names.map { bundled.appendingPathComponent($0).path }
        let rows = Tensor.concatenatingRows(try paths.map { try classifier.inputTensor(imageAt: $0) })
        let plan = try EvaluationPlan(metric: "deletion", options: Options(["steps": .number(7)]))
        let method = AttributionSource.method("integrated-gradients", Options(["steps": .number(4)]))
        let whole = try evaluator.evaluate(plan, inputs: .tensor(rows, names: paths, targets: [8, 1, 7], imagesPerBatch: 3),
                                           attributions: method).report
        let inputs = paths.enumerated().map { BatchInput(path: $1, relativePath: names[$0], target: .index([8, 1, 7][$0])) }
        let chunked = try evaluator.evaluate(plan, inputs: .images(inputs, imagesPerBatch: 2), attributions: method).report
        XCTAssertEqual(chunked.inputs.map(\.curve), whole.inputs.map(\.curve))
        XCTAssertEqual(chunked.inputs.map(\.target), [8, 1, 7])
        XCTAssertEqual(chunked.inputs.map(\.input), paths)
        let spread = Spread(chunked.inputs.map(\.score))
        XCTAssertEqual(chunked.mean, spread.mean)
        XCTAssertEqual(chunked.standardDeviation, spread.standardDeviation)
        XCTAssertEqual(spread.count, 3)
        // Given maps are cut into the same chunks as the inputs.
        let maps = try Explainer(classifier: classifier).explain(method: "saliency", inputs: rows).attributions
        let given = try evaluator.evaluate(plan, inputs: .tensor(rows, imagesPerBatch: 2), attributions: .given(maps)).report
        let one = try evaluator.evaluate(plan, inputs: .tensor(rows.rows(2..<3)), attributions: .given(maps.rows(2..<3))).report
        XCTAssertEqual(given.inputs[2].curve, one.inputs[0].curve)
    }

    func testSpreadIsNumpysMeanAndStd() {
        // numpy.mean([1, 2, 4]) = 2.3333…, numpy.std([1, 2, 4]) = sqrt(14/9) = 1.2472…
        let spread = Spread([1, 2, 4])
        XCTAssertEqual(spread.mean, 7.0 / 3, accuracy: 4 * Double.ulpOfOne)
        XCTAssertEqual(spread.standardDeviation, (14.0 / 9).squareRoot(), accuracy: 8 * Double.ulpOfOne)
        XCTAssertEqual(Spread([5]).standardDeviation, 0)
    }

    func testBadDataSetsAreErrors() throws {
        let evaluator = Evaluator(classifier: try classifier())
        let plan = try EvaluationPlan(metric: "deletion")
        let saliency = AttributionSource.method("saliency", Options())
        func message(_ body: () throws -> Void) -> String? {
            do { try body() } catch let error as ElucidateError { return error.description } catch { return "\(error)" }
            return nil
        }
        XCTAssertEqual(message { _ = try evaluator.evaluate(plan, inputs: .images([]), attributions: saliency) },
                       "no PNG or JPEG images in the inputs given")
        XCTAssertEqual(message { _ = try evaluator.evaluate(plan, inputs: .tensor(Tensor(zeros: [2, 3, 28, 28]), imagesPerBatch: 0),
                                                            attributions: saliency) },
                       "images-per-batch must be at least 1, got 0")
        XCTAssertEqual(message { _ = try evaluator.evaluate(plan, inputs: .tensor(Tensor(zeros: [2, 3, 28, 28])),
                                                            attributions: .given(Tensor(zeros: [1, 3, 28, 28]))) },
                       "the attributions [1, 3, 28, 28] must be [N, C, H, W] with one row per input (2)")
        let missing = BatchInput(path: "/nonexistent/elucidate/x.png", relativePath: "x.png")
        XCTAssertEqual(message { _ = try evaluator.evaluate(plan, inputs: .images([missing]), attributions: saliency) }?
            .hasPrefix("/nonexistent/elucidate/x.png: "), true)
    }
}
