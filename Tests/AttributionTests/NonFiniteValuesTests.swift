import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, item 6: weights with NaN loaded and `predict` showed `nan%`; a NaN or infinite input
/// or baseline gave NaN attributions and a NaN convergence delta. Now weights are refused where
/// every loader meets (`ResNet.init`), naming the tensor; inputs and baselines are refused by the
/// methods, naming the first bad element; and a result that is not finite can be refused by the
/// caller (`Attribution.requireFinite(method:)`) instead of written.
final class NonFiniteValuesTests: XCTestCase {
    static let architecture = ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1])
    static let network = try! ResNet(stateDict: DeterministicWeights.stateDict(architecture, classes: 3))

    private func assertRefused(_ body: @autoclosure () throws -> some Any, _ expected: String,
                               kind: ElucidateError.Kind = .invalidArgument, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, kind, "\(error)", file: file, line: line)
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

    private func poisoned(_ tensor: Tensor, at index: Int, with value: Float) -> Tensor {
        var copy = tensor
        copy.withUnsafeMutableBufferPointer { $0[index] = value }
        return copy
    }

    func testTheFirstNonFiniteElementIsFoundInOnePass() {
        let clean = DeterministicWeights.input(shape: [2, 3, 40, 50])
        XCTAssertNil(clean.firstNonFiniteIndex())
        XCTAssertNil(Tensor(shape: [3], values: [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude])
            .firstNonFiniteIndex())
        for (index, value) in [(0, Float.nan), (4095, .infinity), (4096, -.infinity), (9_000, .nan), (11_999, .signalingNaN)] {
            var bad = poisoned(clean, at: index, with: value)
            if index == 9_000 { bad = poisoned(bad, at: 11_000, with: .infinity) }  // the first one wins
            XCTAssertEqual(bad.firstNonFiniteIndex(), index, "\(value) at \(index)")
        }
        let bad = poisoned(clean, at: 2 * 2000 + 3 * 50 + 7, with: -.infinity)  // [0, 2, 3, 7]
        XCTAssertEqual(bad.firstNonFiniteDescription(), "-inf at element [0, 2, 3, 7]")
        XCTAssertEqual(Tensor(shape: [4], values: [1, 2, .nan, 4]).firstNonFiniteDescription(), "nan at element 2")
    }

    func testWeightsWithNaNAreRefusedNamingTheTensor() throws {
        var stateDict = DeterministicWeights.stateDict(Self.architecture, classes: 3)
        stateDict.tensors["fc.weight"] = poisoned(stateDict["fc.weight"]!, at: 514, with: .nan)  // [1, 2] of [3, 512]
        assertRefused(try ResNet(stateDict: stateDict),
                      "non-finite value in weight 'fc.weight': nan at element [1, 2]; the file is damaged or the training diverged",
                      kind: .invalidFormat)
        stateDict = DeterministicWeights.stateDict(Self.architecture, classes: 3)
        stateDict.tensors["layer2.0.bn1.running_var"] = poisoned(stateDict["layer2.0.bn1.running_var"]!, at: 5, with: .infinity)
        // Through a file, as `predict` loads it: the file is named too.
        let folder = try makeTemporaryDirectory("elucidate-nonfinite")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("m.safetensors")
        try SafetensorsWriter.write(stateDict.tensors, to: url)
        assertRefused(try Classifier.load(from: url),
                      "\(url.path): non-finite value in weight 'layer2.0.bn1.running_var': inf at element 5; "
                      + "the file is damaged or the training diverged", kind: .invalidFormat)
    }

    func testMethodsRefuseNonFiniteInputsAndBaselines() throws {
        let inputs = DeterministicWeights.input(shape: [2, 3, 12, 10])
        let nan = poisoned(inputs, at: 360 + 120 + 10 + 4, with: .nan)  // [1, 1, 1, 4]
        let expected = "non-finite value in the input: nan at element [1, 1, 1, 4]; attributions of NaN or infinity mean nothing"
        assertRefused(try IntegratedGradients(steps: 2).attribute(Self.network, inputs: nan, targets: [0, 1]), expected)
        assertRefused(try Saliency().attribute(Self.network, inputs: nan, targets: [0, 1]), expected)
        assertRefused(try NoiseTunnel(Saliency(), samples: 2, seed: 1).attribute(Self.network, inputs: nan, targets: [0, 1]), expected)
        let grid = try FeatureMask.grid(2, height: 12, width: 10)
        assertRefused(try FeatureAblation(mask: grid).attribute(Self.network, inputs: nan, targets: [0, 1]), expected)

        let baseline = poisoned(Tensor(zeros: [1, 3, 12, 10]), at: 7, with: -.infinity)
        let expectedBaseline = "non-finite value in the baseline: -inf at element [0, 0, 0, 7]; a baseline must hold finite numbers only"
        assertRefused(try IntegratedGradients(steps: 2, baseline: .tensor(baseline)).attribute(Self.network, inputs: inputs, targets: [0, 1]),
                      expectedBaseline)
        assertRefused(try DeepLift(baseline: .tensor(baseline)).attribute(Self.network, inputs: inputs, targets: [0, 1]), expectedBaseline)
        assertRefused(try IntegratedGradients(steps: 2, baseline: .constant(.nan)).attribute(Self.network, inputs: inputs, targets: [0, 1]),
                      "the baseline nan is not a finite number")
        let expectedBaselines = "non-finite value in the baselines: -inf at element [0, 0, 0, 7]; baselines must hold finite numbers only"
        assertRefused(try GradientSHAP(samples: 2, baselines: .tensor(baseline), seed: 1).attribute(Self.network, inputs: inputs, targets: [0, 1]),
                      expectedBaselines)
        assertRefused(try DeepLiftSHAP(baselines: baseline).attribute(Self.network, inputs: inputs, targets: [0, 1]), expectedBaselines)
    }

    func testNonFiniteResultsAreRefusedByTheCaller() throws {
        let values = Tensor(shape: [1, 1, 2, 2], values: [0, 1, .infinity, .nan])
        assertRefused(try Attribution(values: values).requireFinite(method: "saliency"),
                      "saliency gave non-finite attributions (inf at element [0, 0, 1, 0]): "
                      + "the model's arithmetic overflows float32 on this input (or its baseline)")
        assertRefused(try Attribution(values: Tensor(zeros: [2, 1, 1, 1]), convergenceDelta: [0.5, -.nan]).requireFinite(method: "deeplift"),
                      "deeplift gave a non-finite convergence delta (nan for input 1): "
                      + "the model's arithmetic overflows float32 on this input (or its baseline)")
        XCTAssertNoThrow(try Attribution(values: Tensor(zeros: [1, 1, 2, 2]), convergenceDelta: [1e30]).requireFinite(method: "ig"))
    }
}
