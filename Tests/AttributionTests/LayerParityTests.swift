import Elucidate
import Foundation
import TestSupport
import XCTest

/// Layer and neuron methods against Captum 0.9's golden outputs (`tools/golden_layers.py`,
/// `Tests/Fixtures/layers/`), run through the library's workflow (`Explainer`) by the CLI
/// names and options the manifest records. Relative L2 bounds are the issue's: 1e-3 for
/// gradient-only methods, 5e-3 for path integrals (whole-network float32 comparisons: ReLU
/// units within rounding of zero may flip, so no max-abs bound).
final class LayerParityTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let arch: String
        let num_classes: Int
        let input: GoldenInput
        let method: String
        let layer: String
        let layer_input: Bool
        let neuron: [Int]?
        let options: [String: OptionValue]
        let targets: [Int]?
        let output: String
        let shape: [Int]
        let upsampled: [String: String]?
    }

    static let cases: [Case] = try! goldenCases("layers/manifest.json")

    /// The case's classifier, built once per architecture and class count (`DeterministicClassifier`).
    func classifier(_ goldenCase: Case) throws -> Classifier {
        try DeterministicClassifier.classifier(goldenCase.arch, classes: goldenCase.num_classes)
    }

    /// The case's options as the workflow reads them (numbers given as command-line text).
    func options(_ goldenCase: Case, extra: [String: OptionValue] = [:]) -> Options {
        var values: [String: OptionValue] = ["layer": .string(goldenCase.layer), "layer-input": .bool(goldenCase.layer_input)]
        if let neuron = goldenCase.neuron { values["neuron"] = .array(neuron.map { .number(Double($0)) }) }
        for (name, value) in goldenCase.options {
            if name == "layer-mask", case .string(let file) = value {
                values[name] = .string(fixtureURL("layers/\(file)").path)
            } else if name == "baseline", case .number(let number) = value, goldenCase.method != "layer-feature-ablation" {
                values[name] = .string(String(number))
            } else {
                values[name] = value
            }
        }
        return Options(values.merging(extra) { $1 })
    }

    /// Captum's NoiseTunnel around layer methods (500 noisy copies): the noise differs from
    /// torch's, so the maps are compared by correlation, as the pixel methods' tunnel is.
    func testNoiseTunnelAroundLayerMethods() throws {
        let selected = Self.cases.filter { $0.options["noise-tunnel"] != nil }
        XCTAssertGreaterThanOrEqual(selected.count, 2)
        for goldenCase in selected {
            let expected = try NPY.readFloat32(fixtureURL("layers/\(goldenCase.output)"))
            let explanation = try Explainer(classifier: try classifier(goldenCase)).explain(
                method: goldenCase.method, options: options(goldenCase, extra: ["seed": .string("7")]),
                inputs: DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape),
                targets: goldenCase.targets)
            XCTAssertEqual(explanation.attributions.shape, expected.shape, goldenCase.name)
            let correlation = pearsonCorrelation(explanation.attributions.scalars, expected.scalars)
            print("layer parity \(goldenCase.name): correlation with Captum \(correlation)")
            XCTAssertGreaterThanOrEqual(correlation, 0.95, goldenCase.name)
        }
    }

    /// Runs every case of `methods`, checks shapes and relative L2 errors, and prints them.
    func check(_ methods: Set<String>, tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        let selected = Self.cases.filter { methods.contains($0.method) && $0.options["noise-tunnel"] == nil }
        XCTAssertFalse(selected.isEmpty, "no golden case for \(methods)", file: file, line: line)
        for goldenCase in selected {
            let explainer = Explainer(classifier: try classifier(goldenCase))
            let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
            var runs: [(String, Options)] = [(goldenCase.output, options(goldenCase))]
            for (mode, output) in (goldenCase.upsampled ?? [:]).sorted(by: { $0.key < $1.key }) {
                runs.append((output, options(goldenCase, extra: ["upsample": .string(mode)])))
            }
            for (output, options) in runs {
                let expected = try NPY.readFloat32(fixtureURL("layers/\(output)"))
                let explanation = try explainer.explain(method: goldenCase.method, options: options, inputs: input,
                                                        targets: goldenCase.targets)
                XCTAssertEqual(explanation.attributions.shape, expected.shape, output, file: file, line: line)
                let error = relativeL2Error(explanation.attributions.scalars, expected.scalars)
                print("layer parity \(output): relative L2 \(String(format: "%.3g", error))")
                XCTAssertLessThanOrEqual(error, tolerance, output, file: file, line: line)
            }
        }
    }

    func testLayerActivation() throws {
        try check(["layer-activation"], tolerance: 1e-3)
    }

    func testLayerGradientXActivation() throws {
        try check(["layer-gradient-x-activation"], tolerance: 1e-3)
    }

    /// The issue's headline case is `r34_grad_cam_layer4` (ResNet34, layer4, target 264).
    func testGradCam() throws {
        try check(["grad-cam"], tolerance: 1e-3)
    }

    func testLayerIntegratedGradients() throws {
        try check(["layer-integrated-gradients"], tolerance: 5e-3)
    }

    func testLayerConductance() throws {
        try check(["layer-conductance"], tolerance: 5e-3)
    }

    func testInternalInfluence() throws {
        try check(["internal-influence"], tolerance: 5e-3)
    }

    func testGuidedGradCam() throws {
        try check(["guided-grad-cam"], tolerance: 1e-3)
    }

    func testNeuronGradientAndGuidedBackprop() throws {
        try check(["neuron-gradient", "neuron-guided-backprop"], tolerance: 1e-3)
    }

    /// Captum draws with numpy; the golden records its draws (baseline index, α), which the
    /// method takes in place of its own.
    func testLayerGradientSHAPWithCaptumsDraws() throws {
        let goldenCase = try XCTUnwrap(Self.cases.first { $0.method == "layer-gradient-shap" })
        let network = try classifier(goldenCase).network
        let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
        let baselines = try NPY.readFloat32(fixtureURL("layers/r18_gradient_shap_baselines.npy"))
        let recorded = try NPY.readFloat32(fixtureURL("layers/r18_layer_gradient_shap_layer3_samples.npy"))
        let draws = (0..<recorded.shape[0]).map { LayerGradientSHAP.Draw(baseline: Int(recorded[$0, 0]), alpha: recorded[$0, 1]) }
        let method = LayerGradientSHAP(layer: LayerChoice(goldenCase.layer), samples: draws.count / input.shape[0],
                                       baselines: .tensor(baselines), seed: 0, draws: draws)
        let attribution = try method.attribute(network, inputs: input, targets: try XCTUnwrap(goldenCase.targets))
        let expected = try NPY.readFloat32(fixtureURL("layers/\(goldenCase.output)"))
        XCTAssertEqual(attribution.values.shape, expected.shape)
        let error = relativeL2Error(attribution.values.scalars, expected.scalars)
        print("layer parity \(goldenCase.output): relative L2 \(String(format: "%.3g", error))")
        XCTAssertLessThanOrEqual(error, 1e-3)
    }

    func testNeuronConductance() throws {
        try check(["neuron-conductance"], tolerance: 5e-3)
    }

    func testLayerDeepLift() throws {
        try check(["layer-deeplift"], tolerance: 1e-3)
    }

    func testLayerFeatureAblation() throws {
        try check(["layer-feature-ablation"], tolerance: 1e-3)
    }

    func testNeuronIntegratedGradients() throws {
        try check(["neuron-integrated-gradients"], tolerance: 5e-3)
    }
}
