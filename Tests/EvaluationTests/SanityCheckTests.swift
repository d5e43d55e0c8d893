@testable import ElucidateEvaluation
import Elucidate
import Foundation
import TestSupport
import XCTest

/// The cascading randomisation: stages, PyTorch's default initialisation, determinism, and the
/// sanity check through the umbrella's `Evaluator`.
final class SanityCheckTests: XCTestCase {
    func weights() throws -> StateDict { DeterministicWeights.stateDict(try XCTUnwrap(ResNetArchitecture.named("resnet18")), classes: 10) }

    func testStagesGoFromTheTopAndKeepEarlierStages() throws {
        XCTAssertEqual(CascadingRandomization.stages.map(\.name), ["fc", "layer4", "layer3", "layer2", "layer1", "conv1"])
        let original = try weights()
        let cascade = try CascadingRandomization(seed: 3).cascade(original)
        XCTAssertEqual(cascade.count, 6)
        // After the fc stage only fc changed; after layer4, fc keeps the fc stage's values.
        XCTAssertNotEqual(cascade[0]["fc.weight"]!.scalars, original["fc.weight"]!.scalars)
        XCTAssertEqual(cascade[0]["layer4.0.conv1.weight"]!.scalars, original["layer4.0.conv1.weight"]!.scalars)
        XCTAssertEqual(cascade[1]["fc.weight"]!.scalars, cascade[0]["fc.weight"]!.scalars)
        XCTAssertNotEqual(cascade[1]["layer4.0.conv1.weight"]!.scalars, original["layer4.0.conv1.weight"]!.scalars)
        XCTAssertEqual(cascade[4]["conv1.weight"]!.scalars, original["conv1.weight"]!.scalars)
        XCTAssertNotEqual(cascade[5]["conv1.weight"]!.scalars, original["conv1.weight"]!.scalars)
        // The same seed draws the same weights.
        let again = try CascadingRandomization(seed: 3).cascade(original)
        XCTAssertEqual(again[5]["layer2.1.conv2.weight"]!.scalars, cascade[5]["layer2.1.conv2.weight"]!.scalars)
    }

    func testPyTorchDefaultInitialisation() throws {
        let last = try XCTUnwrap(try CascadingRandomization(seed: 9).cascade(try weights()).last)
        // Conv weights [512, 512, 3, 3]: uniform in ±1/√(512·9); fc bias: ±1/√512.
        let conv = last["layer4.1.conv2.weight"]!.scalars
        let bound = 1 / Float(512 * 9).squareRoot()
        XCTAssertLessThanOrEqual(conv.map(abs).max()!, bound)
        XCTAssertGreaterThan(conv.map(abs).max()!, 0.9 * bound)  // fills the interval
        XCTAssertLessThanOrEqual(last["fc.bias"]!.scalars.map(abs).max()!, 1 / Float(512).squareRoot())
        XCTAssertEqual(Set(last["layer1.0.bn1.weight"]!.scalars), [1])
        XCTAssertEqual(Set(last["layer1.0.bn1.bias"]!.scalars), [0])
        XCTAssertEqual(Set(last["bn1.running_mean"]!.scalars), [0])
        XCTAssertEqual(Set(last["layer3.0.downsample.1.running_var"]!.scalars), [1])
    }

    func testSanityCheckThroughTheEvaluator() throws {
        let classifier = try DeterministicClassifier.classifier("resnet18", classes: 10)
        let inputs = DeterministicWeights.input(key: "input", shape: [2, 3, 32, 32])
        let check = try Evaluator(classifier: classifier).sanityCheck(
            method: "saliency", inputs: inputs, targets: [3, 7], weights: try weights(), seed: 5)
        let report = check.report
        XCTAssertEqual(check.maps.count, 7)
        XCTAssertEqual(check.maps[6].shape, [2, 3, 32, 32])
        let figure = check.figure(row: 1)
        XCTAssertEqual(figure.width, 6 + 7 * (96 + 6))
        XCTAssertEqual(report.layers.map(\.layer), ["fc", "layer4", "layer3", "layer2", "layer1", "conv1"])
        XCTAssertEqual(report.inputs.map(\.target), [3, 7])
        for stage in report.layers + report.inputs.flatMap(\.layers) {
            XCTAssertTrue((-1...1).contains(stage.spearman) && (-1...1).contains(stage.spearmanAbs), "\(stage)")
            XCTAssertTrue((-1...1).contains(stage.ssim), "\(stage)")
        }
        let again = try Evaluator(classifier: classifier).sanityCheck(
            method: "saliency", inputs: inputs, targets: [3, 7], weights: try weights(), seed: 5).report
        XCTAssertEqual(again.layers.map(\.ssim), report.layers.map(\.ssim))
    }

    func testOtherLayoutsAreRefused() {
        XCTAssertThrowsError(try CascadingRandomization(seed: 1).cascade(StateDict(["0.weight": Tensor(zeros: [1])])))
    }
}
