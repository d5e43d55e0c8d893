import Elucidate
import Foundation
import XCTest

/// A test case with a small deterministic ResNet18 (3 classes) and a batch of two inputs
/// `[2, 3, 40, 32]`, written to the test's folder as `m.safetensors` and `x.npy`: what the
/// layer, CAM and C API tests run every method on (layer3 is `[N, 256, 3, 2]`, layer4
/// `[N, 512, 2, 1]` there, so every method is fast).
open class SmallResNetTestCase: TemporaryFolderTestCase {
    /// The batch every test explains, `[2, 3, 40, 32]` (DeterministicWeights' input).
    public let inputTensor = DeterministicWeights.input(shape: [2, 3, 40, 32])
    /// The network the weights file holds, for computing the library's result directly.
    public private(set) var network: ResNet!
    /// The weights file, `.safetensors`.
    public private(set) var model: String!
    /// The input batch as a `.npy` file.
    public private(set) var input: String!

    override open func setUpWithError() throws {
        try super.setUpWithError()
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 3)
        network = try ResNet(stateDict: stateDict)
        model = path("m.safetensors")
        input = path("x.npy")
        try SafetensorsWriter.write(stateDict.tensors, metadata: [:], to: URL(fileURLWithPath: model))
        try NPY.write(inputTensor, to: URL(fileURLWithPath: input))
    }

    /// `elucidate explain METHOD --model m.safetensors --input-tensor x.npy --attributions OUTPUT EXTRA…`.
    public func explain(_ method: String, _ extra: [String], output: String) throws -> CommandResult {
        try runElucidate(["explain", method, "--model", model, "--input-tensor", input, "--attributions", output] + extra)
    }
}
