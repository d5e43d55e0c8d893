import Elucidate
import TestSupport
import XCTest

final class ArchitectureInferenceTests: XCTestCase {
    /// A state dict with the right keys; only `conv1.weight` needs its real shape.
    private func keysOnly(_ arch: ResNetArchitecture, classes: Int = 10) -> StateDict {
        var tensors: [String: Tensor] = [:]
        for (key, shape) in arch.parameterShapes(classes: classes) {
            tensors[key] = key == "conv1.weight" ? Tensor(zeros: shape) : Tensor(zeros: [1])
        }
        return StateDict(tensors)
    }

    func testInfersEveryTorchvisionDepth() throws {
        for (name, arch) in ResNetArchitecture.named {
            let inferred = try ResNet.inferArchitecture(keysOnly(arch))
            XCTAssertEqual(inferred, arch, name)
            XCTAssertEqual(inferred.name, name)
        }
    }

    func testCustomDepthAndSmallStemAreInferredAndRun() throws {
        let arch = ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1], stem: .small)
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 4, inputChannels: 1))
        XCTAssertEqual(network.architecture, arch)
        XCTAssertEqual(network.architecture.name, "resnet(basic 1-1-1-1)-small-stem")
        XCTAssertEqual(network.inputChannels, 1)
        let logits = try network.logits(DeterministicWeights.input(shape: [3, 1, 28, 28]))
        XCTAssertEqual(logits.shape, [3, 4])
    }

    func testMissingKeyIsNamed() throws {
        let arch = ResNetArchitecture.named("resnet18")!
        var stateDict = DeterministicWeights.stateDict(arch, classes: 3)
        stateDict.tensors["layer3.1.bn2.running_var"] = nil
        XCTAssertThrowsError(try ResNet(stateDict: stateDict)) { error in
            let e = error as! ElucidateError
            XCTAssertEqual(e.kind, .unknownArchitecture)
            XCTAssertTrue(e.message.contains("missing 'layer3.1.bn2.running_var'"), e.message)
        }
    }

    func testUnexpectedKeyIsNamed() throws {
        let arch = ResNetArchitecture.named("resnet18")!
        var stateDict = DeterministicWeights.stateDict(arch, classes: 3)
        stateDict.tensors["layer5.0.conv1.weight"] = Tensor(zeros: [1, 1, 1, 1])
        XCTAssertThrowsError(try ResNet(stateDict: stateDict)) { error in
            XCTAssertTrue((error as! ElucidateError).message.contains("unexpected 'layer5.0.conv1.weight'"))
        }
    }

    func testNotAResNetIsRefusedWithKeys() throws {
        let stateDict = StateDict(["features.0.weight": Tensor(zeros: [8, 3, 3, 3]), "classifier.weight": Tensor(zeros: [2, 8])])
        XCTAssertThrowsError(try ResNet(stateDict: stateDict)) { error in
            let message = (error as! ElucidateError).message
            XCTAssertTrue(message.contains("missing 'bn1.bias'"), message)
            XCTAssertTrue(message.contains("unexpected 'classifier.weight'"), message)
        }
    }

    func testExplicitArchitectureMustMatch() throws {
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 3)
        XCTAssertThrowsError(try ResNet(stateDict: stateDict, architecture: ResNetArchitecture.named("resnet34")!)) { error in
            let message = (error as! ElucidateError).message
            XCTAssertTrue(message.contains("does not match resnet34"), message)
            XCTAssertTrue(message.contains("missing 'layer1.2.bn1.bias'"), message)
        }
    }

    func testInconsistentShapesAreRefused() throws {
        var stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 3)
        stateDict.tensors["fc.weight"] = Tensor(zeros: [3, 100])
        XCTAssertThrowsError(try ResNet(stateDict: stateDict)) { error in
            XCTAssertEqual((error as! ElucidateError).kind, .invalidFormat)
        }
    }

    func testTinyInputsWorkAsInPyTorch() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 3))
        XCTAssertEqual(try network.logits(DeterministicWeights.input(shape: [1, 3, 1, 1])).shape, [1, 3])
        XCTAssertThrowsError(try network.logits(Tensor(zeros: [1, 3, 0, 5])))
        XCTAssertThrowsError(try network.logits(Tensor(zeros: [1, 1, 8, 8]))) { error in
            XCTAssertTrue((error as! ElucidateError).message.contains("3 input channels"))
        }
    }
}
