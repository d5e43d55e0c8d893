import Elucidate
@testable import ElucidateModels
import Foundation
import TestSupport
import XCTest

/// fastai's `vision_learner` layout: body `0.*`, `create_head` `1.*`. Golden logits from
/// `tools/golden.py` (`fastai.json`), made with `tools/resnet.py`'s `fastai_model`.
final class FastaiTests: XCTestCase {
    struct Manifest: Decodable {
        struct Case: Decodable {
            struct Input: Decodable {
                let key: String
                let shape: [Int]
            }
            let name: String
            let arch: String
            let layout: String
            let num_classes: Int
            let input: Input
            let output: String
            let torch_f32_vs_f64_rel_l2: Double
        }
        let cases: [Case]
    }

    static func fastai(_ name: String) -> ResNetArchitecture {
        var arch = ResNetArchitecture.named(name)!
        arch.head = .fastai
        return arch
    }

    func testGoldenCasesMatchPyTorch() throws {
        let data = try Data(contentsOf: fixtureURL("golden/fastai.json"))
        let manifest = try JSONDecoder().decode(Manifest.self, from: data)
        XCTAssertTrue(manifest.cases.contains { $0.arch == "resnet34" })
        for goldenCase in manifest.cases {
            XCTAssertEqual(goldenCase.layout, "fastai")
            let arch = Self.fastai(goldenCase.arch)
            let stateDict = DeterministicWeights.stateDict(arch, classes: goldenCase.num_classes)
            XCTAssertTrue(stateDict.contains("0.4.0.conv1.weight") && stateDict.contains("1.8.weight"))
            XCTAssertEqual(try ResNet.inferArchitecture(stateDict), arch)
            let network = try ResNet(stateDict: stateDict)
            XCTAssertEqual(network.architecture, arch)
            XCTAssertEqual(network.architecture.description, "\(goldenCase.arch) with fastai head")
            let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
            let logits = try network.logits(input)
            let expected = try NPY.readFloat32(fixtureURL("golden/\(goldenCase.output)"))
            XCTAssertEqual(logits.shape, expected.shape, goldenCase.name)
            let error = relativeL2Error(logits.scalars, expected.scalars)
            XCTAssertLessThanOrEqual(error, 1e-4, "\(goldenCase.name): relative L2 error \(error)")
            print("\(goldenCase.name): relative L2 error \(error) (PyTorch float32 vs float64: \(goldenCase.torch_f32_vs_f64_rel_l2))")
        }
    }

    /// The fastai body with the torchvision weights it was made from computes the same feature map.
    func testBodyKeysMapToTorchvision() throws {
        let fastai = try ResNet(stateDict: DeterministicWeights.stateDict(Self.fastai("resnet18"), classes: 5))
        let torchvision = try ResNet(stateDict: DeterministicWeights.stateDict(.named("resnet18")!, classes: 5))
        let input = DeterministicWeights.input(shape: [1, 3, 48, 40])
        XCTAssertEqual(try fastai.featureMap(input).scalars, try torchvision.featureMap(input).scalars)
        XCTAssertEqual(fastai.classes, 5)
        guard case .fastai(let head) = fastai.head else { return XCTFail("expected the fastai head") }
        XCTAssertEqual(head.hiddenFeatures, 512)
        XCTAssertEqual(fastai.head.inputChannels, 512)
    }

    /// Missing and unexpected keys are named as fastai spells them.
    func testKeyErrorsUseFastaiNames() throws {
        let arch = Self.fastai("resnet18")
        var tensors = DeterministicWeights.stateDict(arch, classes: 3).tensors
        tensors["0.5.0.conv2.weight"] = nil
        tensors["1.9.weight"] = Tensor(zeros: [3])
        XCTAssertThrowsError(try ResNet(stateDict: StateDict(tensors), architecture: .named("resnet18"))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("'0.5.0.conv2.weight'"), message)
            XCTAssertTrue(message.contains("unexpected '1.9.weight'"), message)
            XCTAssertTrue(message.contains("resnet18 with fastai head"), message)
        }
        // A fastai head without its last layer.
        tensors = DeterministicWeights.stateDict(arch, classes: 3).tensors
        tensors["1.8.weight"] = nil
        XCTAssertThrowsError(try ResNet(stateDict: StateDict(tensors))) { error in
            XCTAssertTrue("\(error)".contains("missing '1.8.weight'"), "\(error)")
        }
        // A wrong head width is a shape error naming the key.
        tensors = DeterministicWeights.stateDict(arch, classes: 3).tensors
        tensors["1.4.weight"] = Tensor(zeros: [512, 512])
        XCTAssertThrowsError(try ResNet(stateDict: StateDict(tensors))) { error in
            XCTAssertTrue("\(error)".contains("'1.4.weight' takes 512 features"), "\(error)")
        }
        // torchvision keys still name torchvision keys.
        var plain = DeterministicWeights.stateDict(.named("resnet18")!, classes: 3).tensors
        plain["layer2.0.conv2.weight"] = nil
        XCTAssertThrowsError(try ResNet(stateDict: StateDict(plain))) { error in
            XCTAssertTrue("\(error)".contains("missing 'layer2.0.conv2.weight'"), "\(error)")
        }
    }

    /// parameterShapes for the fastai head lists exactly the keys and shapes fastai's state
    /// dict has (as tools/resnet.py's fastai_model gives them).
    func testParameterShapes() {
        let shapes = Dictionary(uniqueKeysWithValues: Self.fastai("resnet34").parameterShapes(classes: 37).map { ($0.key, $0.shape) })
        XCTAssertEqual(shapes["0.0.weight"], [64, 3, 7, 7])
        XCTAssertEqual(shapes["0.1.running_var"], [64])
        XCTAssertEqual(shapes["0.7.2.conv2.weight"], [512, 512, 3, 3])
        XCTAssertEqual(shapes["0.5.0.downsample.0.weight"], [128, 64, 1, 1])
        XCTAssertEqual(shapes["1.2.weight"], [1024])
        XCTAssertEqual(shapes["1.4.weight"], [512, 1024])
        XCTAssertEqual(shapes["1.6.running_mean"], [512])
        XCTAssertEqual(shapes["1.8.weight"], [37, 512])
        XCTAssertNil(shapes["fc.weight"])
        XCTAssertFalse(shapes.keys.contains { $0.hasPrefix("layer") || $0.hasPrefix("conv1") })
        // 218 body tensors of resnet34 + 10 head tensors
        XCTAssertEqual(shapes.count, ResNetArchitecture.named("resnet34")!.parameterShapes(classes: 37).count - 2 + 10)
    }

    /// The head's recorded forward equals its plain forward, its gradient matches finite
    /// differences, and Integrated Gradients runs through it with a small convergence delta.
    func testGraphForwardGradientAndIntegratedGradients() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(Self.fastai("resnet18"), classes: 4))
        let input = DeterministicWeights.input(shape: [2, 3, 40, 32])
        let graph = Graph()
        let recorded = try network.logits(graph.input(input), in: graph)
        XCTAssertEqual(recorded.value.scalars, try network.logits(input).scalars)

        guard case .fastai(let head) = network.head else { return XCTFail("expected the fastai head") }
        // The head alone on a feature map, against central differences.
        var random = SeededGenerator(seed: 7)
        let features = Tensor(shape: [2, 512, 3, 2], values: random.floats(2 * 512 * 6))
        let g = Graph()
        let x = g.input(features)
        let y = try head(x, in: g)
        XCTAssertEqual(y.value.scalars, try head(features).scalars)
        let seed = Tensor(shape: y.shape, values: random.floats(y.value.count))
        let gradient = try g.gradients(of: y, seed: seed, for: [x])[0]
        func loss(_ value: Tensor) throws -> Double {
            zip(try head(value).scalars, seed.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let scale = gradient.scalars.map { abs($0) }.max()!
        let h: Float = 1e-2
        for i in stride(from: 5, to: features.count, by: 613) {
            var plus = features, minus = features
            plus.withUnsafeMutableBufferPointer { $0[i] += h }
            minus.withUnsafeMutableBufferPointer { $0[i] -= h }
            let numeric = Float((try loss(plus) - loss(minus)) / Double(2 * h))
            XCTAssertEqual(gradient.scalars[i], numeric, accuracy: 2e-2 * max(abs(numeric), 0.1 * scale), "element \(i)")
        }

        let ig = IntegratedGradients(steps: 32)
        let attribution = try ig.attribute(network, inputs: input, targets: [1, 3])
        XCTAssertEqual(attribution.values.shape, input.shape)
        XCTAssertTrue(attribution.values.scalars.allSatisfy(\.isFinite))
        let delta = try XCTUnwrap(attribution.convergenceDelta)
        let logits = try network.logits(input)
        let baseline = try network.logits(Tensor(zeros: input.shape))
        for (row, target) in [1, 3].enumerated() {
            let gap = abs(logits[row, target] - baseline[row, target])
            XCTAssertLessThan(abs(delta[row]), 0.05 * max(gap, 1), "row \(row): delta \(delta[row]), gap \(gap)")
        }
    }
}
