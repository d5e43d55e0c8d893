import Elucidate
@testable import ElucidateModels
import Foundation
import TestSupport
import XCTest

/// Layers by PyTorch module path: names, shapes, taps and replacements (ResNet+Layers.swift).
final class LayerNamesTests: XCTestCase {
    nonisolated(unsafe) static var resnet18: ResNet = {
        try! ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 5))
    }()
    let input = DeterministicWeights.input(shape: [2, 3, 48, 40])

    func testNamesFollowNamedModulesOrderWithShapes() throws {
        let layers = try Self.resnet18.layerNames(inputShape: [1, 3, 64, 64])
        let names = layers.map(\.name)
        XCTAssertEqual(Array(names.prefix(8)),
                       ["conv1", "bn1", "relu", "maxpool", "layer1", "layer1.0", "layer1.0.conv1", "layer1.0.bn1"])
        XCTAssertEqual(Array(names.suffix(2)), ["avgpool", "fc"])
        XCTAssertTrue(names.contains("layer2.0.downsample.1"))
        XCTAssertFalse(names.contains("layer1.0.downsample"))
        let shapes = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0.outputShape) })
        XCTAssertEqual(shapes["conv1"], [1, 64, 32, 32])
        XCTAssertEqual(shapes["maxpool"], [1, 64, 16, 16])
        XCTAssertEqual(shapes["layer3"], [1, 256, 4, 4])
        XCTAssertEqual(shapes["layer4.1.conv2"], [1, 512, 2, 2])
        XCTAssertEqual(shapes["avgpool"], [1, 512, 1, 1])
        XCTAssertEqual(shapes["fc"], [1, 5])
        XCTAssertTrue(layers.allSatisfy { !$0.outputShape.isEmpty }, "every name has a shape")
    }

    func testTappingKeepsTheLogitsAndGivesTheLayer() throws {
        let graph = Graph()
        let (logits, layer) = try Self.resnet18.logits(graph.input(input), in: graph, tapping: LayerTap("layer4"))
        XCTAssertLessThanOrEqual(relativeL2Error(logits.value.scalars, try Self.resnet18.logits(input).scalars), 1e-6)
        XCTAssertLessThanOrEqual(relativeL2Error(layer.value.scalars, try Self.resnet18.featureMap(input).scalars), 1e-6)
    }

    /// Inside a block the forward runs unfolded: `conv` is before its batch norm, `bn` after,
    /// and the folded block's first convolution (with its fused ReLU) is relu(bn1).
    func testInsideABlockTheBatchNormIsNotFolded() throws {
        func tapped(_ name: String, atInput: Bool = false) throws -> Tensor {
            let graph = Graph()
            return try Self.resnet18.logits(graph.input(input), in: graph, tapping: LayerTap(name, atInput: atInput)).layer.value
        }
        let blockInput = try tapped("layer2.0", atInput: true)
        let conv = try tapped("layer2.0.conv1")
        let norm = try tapped("layer2.0.bn1")
        let block = Self.resnet18.stages[1][0]
        XCTAssertTrue(try block.unfolded[0].conv(blockInput).scalars == conv.scalars)
        XCTAssertTrue(try block.unfolded[0].norm(conv).scalars == norm.scalars)
        XCTAssertLessThanOrEqual(relativeL2Error(norm.relu().scalars, try block.convolutions[0](blockInput).scalars), 1e-5)
        // The shared relu is its last call: the block's output; its input is the sum before it.
        // (The block runs unfolded for its `relu` and folded for itself: equal up to rounding.)
        XCTAssertLessThanOrEqual(relativeL2Error(try tapped("layer2.0.relu").scalars, try tapped("layer2.0").scalars), 1e-5)
        XCTAssertLessThanOrEqual(relativeL2Error(try tapped("layer2.0.relu", atInput: true).relu().scalars,
                                                 try tapped("layer2.0").scalars), 1e-5)
        XCTAssertTrue(try tapped("layer2.0.conv2", atInput: true).scalars == norm.relu().scalars)
    }

    func testReplacingALayerChangesWhatFollows() throws {
        let graph = Graph()
        let plain = try Self.resnet18.logits(graph.input(input), in: graph, tapping: LayerTap("layer3")).layer.value
        let same = Graph()
        let replaced = try Self.resnet18.logits(same.input(input), in: same, tapping: LayerTap("layer3", replacement: plain))
        XCTAssertLessThanOrEqual(relativeL2Error(replaced.logits.value.scalars, try Self.resnet18.logits(input).scalars), 1e-6)
        let zero = Graph()
        let zeroed = try Self.resnet18.logits(zero.input(input), in: zero,
                                              tapping: LayerTap("layer3", replacement: Tensor(zeros: plain.shape)))
        // Zero features through layer4's folded biases: the logits no longer depend on the input.
        let other = Graph()
        let otherZeroed = try Self.resnet18.logits(other.input(input.map { $0 * 2 }), in: other,
                                                   tapping: LayerTap("layer3", replacement: Tensor(zeros: plain.shape)))
        XCTAssertTrue(zeroed.logits.value.scalars == otherZeroed.logits.value.scalars)
        XCTAssertThrowsError(try Self.resnet18.logits(zero.input(input), in: Graph(),
                                                      tapping: LayerTap("layer3", replacement: Tensor(zeros: [1, 2]))))
        XCTAssertThrowsError(try Self.resnet18.logits(Graph().input(input), in: Graph(),
                                                      tapping: LayerTap("layer1.0.relu", replacement: plain))) { error in
            XCTAssertTrue((error as! ElucidateError).message.contains("replace the block ('layer1.0')"), "\(error)")
        }
    }

    func testUnknownNamesListCloseMatches() throws {
        XCTAssertThrowsError(try Self.resnet18.resolveLayer("layer4.1.conv3")) { error in
            let message = (error as! ElucidateError).message
            XCTAssertTrue(message.contains("unknown layer 'layer4.1.conv3'"), message)
            XCTAssertTrue(message.contains("'layer4.1.conv1'") && message.contains("'layer4.1.conv2'"), message)
        }
        XCTAssertThrowsError(try Self.resnet18.resolveLayer("0.7"))
    }

    func testFastaiNames() throws {
        var arch = ResNetArchitecture.named("resnet18")!
        arch.head = .fastai
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 4))
        let layers = try network.layerNames(inputShape: [1, 3, 64, 64])
        let shapes = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0.outputShape) })
        XCTAssertEqual(layers.first?.name, "0")
        XCTAssertEqual(shapes["0.0"], [1, 64, 32, 32])
        XCTAssertEqual(shapes["0.3"], [1, 64, 16, 16])
        XCTAssertEqual(shapes["0.7"], [1, 512, 2, 2])
        XCTAssertEqual(shapes["0.7.1.conv2"], [1, 512, 2, 2])
        XCTAssertEqual(shapes["1.0"], [1, 1024, 1, 1])
        XCTAssertEqual(shapes["1.4"], [1, 512])
        XCTAssertEqual(shapes["1.8"], [1, 4])
        XCTAssertEqual(shapes["1"], [1, 4])
        XCTAssertNil(shapes["layer4"])
        let graph = Graph()
        let (logits, body) = try network.logits(graph.input(input), in: graph, tapping: LayerTap("0.7"))
        XCTAssertLessThanOrEqual(relativeL2Error(body.value.scalars, try network.featureMap(input).scalars), 1e-6)
        XCTAssertLessThanOrEqual(relativeL2Error(logits.value.scalars, try network.logits(input).scalars), 1e-6)
    }
}
