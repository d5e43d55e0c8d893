import Elucidate
import Foundation
import TestSupport
import XCTest

/// LRP against Zennit 0.5.1's relevances (`tools/golden_cam.py`, the `lrp` cases of
/// `Tests/Fixtures/cam/manifest.json`) and conservation on a tiny network.
final class LRPTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let arch: String
        let num_classes: Int
        let input: GoldenInput
        let method: String
        let targets: [Int]
        let output: String?
        let options: Options
        let relevance_sum: Float?
        struct Options: Decodable {
            let composite: String?
            let low: [Float]?
            let high: [Float]?
        }
    }

    static let cases: [Case] = try! goldenCases("cam/manifest.json").filter { (c: Case) in c.method == "lrp" }

    /// Every composite within the bound (relative L2 ≤ 5e-3) of Zennit: on ResNet34
    /// (BasicBlocks, one input) and on ResNet50 (Bottlenecks, a batch of two with a target each).
    func testCompositesMatchZennit() throws {
        XCTAssertEqual(Set(Self.cases.compactMap(\.options.composite)), Set(LRPComposite.allCases.map(\.rawValue)))
        XCTAssertTrue(Self.cases.contains { $0.arch == "resnet50" && $0.input.shape[0] > 1 }, "no Bottleneck batch case")
        for goldenCase in Self.cases {
            let network = try DeterministicClassifier.classifier(goldenCase.arch, classes: goldenCase.num_classes).network
            let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
            let expected = try NPY.readFloat32(fixtureURL("cam/\(try XCTUnwrap(goldenCase.output))"))
            let composite = try XCTUnwrap(LRPComposite(rawValue: goldenCase.options.composite ?? ""))
            let method = LRP(composite: composite, low: goldenCase.options.low, high: goldenCase.options.high)
            let values = try method.attribute(network, inputs: input, targets: goldenCase.targets).values
            XCTAssertEqual(values.shape, expected.shape)
            let error = relativeL2Error(values.scalars, expected.scalars)
            print("\(goldenCase.name): relative L2 error vs Zennit \(error), sum \(values.scalars.reduce(0, +)) (Zennit \(goldenCase.relevance_sum ?? .nan))")
            XCTAssertLessThanOrEqual(error, 5e-3, goldenCase.name)
        }
    }

    /// With no biases and the epsilon (and z+, flat-free) rules, relevance is conserved: the input's
    /// relevances sum to ≈ 1, the one-hot started from (z / s(z) with z the target logit).
    func testConservationOnTinyBiasFreeNetwork() throws {
        try checkConservation(ResNetArchitecture.named("resnet18")!)
    }

    /// The same through Bottleneck blocks (three convolutions, a downsample in every stage).
    func testConservationThroughBottlenecks() throws {
        try checkConservation(ResNetArchitecture(block: .bottleneck, blocksPerStage: [1, 2, 1, 1]))
    }

    private func checkConservation(_ arch: ResNetArchitecture, file: StaticString = #filePath, line: UInt = #line) throws {
        var dict = DeterministicWeights.stateDict(arch, classes: 5)
        for key in dict.keys where key.hasSuffix("running_mean") || key.hasSuffix(".bias") {
            dict.tensors[key] = Tensor(zeros: dict[key]!.shape)
        }
        let network = try ResNet(stateDict: dict)
        let input = DeterministicWeights.input(key: "lrp-tiny", shape: [2, 3, 32, 32])
        let logits = try network.logits(input)
        let targets = [1, 3]
        for composite in [LRPComposite.epsilonPlus, .epsilonAlpha2Beta1] {
            let values = try LRP(composite: composite, batchSize: 1).attribute(network, inputs: input, targets: targets).values
            XCTAssertEqual(values.shape, input.shape)
            for (row, sum) in values.rowSums().enumerated() where abs(logits[row, targets[row]]) > 1e-3 {
                XCTAssertEqual(sum, 1, accuracy: 2e-3, "\(composite.rawValue) row \(row)", file: file, line: line)
            }
        }
    }

    /// Any input size runs (the box bounds broadcast per channel) and gives finite relevances.
    func testOddInputSizeRuns() throws {
        let arch = try XCTUnwrap(ResNetArchitecture.named("resnet18"))
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 3))
        let input = DeterministicWeights.input(key: "lrp-shape", shape: [1, 3, 40, 36])
        let values = try LRP(composite: .epsilonGammaBox).attribute(network, inputs: input, targets: [2]).values
        XCTAssertEqual(values.shape, [1, 3, 40, 36])
        XCTAssertTrue(values.scalars.allSatisfy(\.isFinite))
    }
}

extension LRPTests {
    /// A fastai head is refused with a message naming what is supported.
    func testFastaiHeadIsRefused() throws {
        var arch = try XCTUnwrap(ResNetArchitecture.named("resnet18"))
        arch.head = .fastai
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 3), architecture: arch)
        let input = DeterministicWeights.input(key: "lrp-shape", shape: [1, 3, 32, 32])
        XCTAssertThrowsError(try LRP(composite: .epsilonPlus).attribute(network, inputs: input, targets: [0])) { error in
            XCTAssertTrue("\(error)".contains("torchvision"), "\(error)")
        }
    }
}
