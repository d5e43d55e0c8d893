import Elucidate
import Foundation
import TestSupport
import XCTest

/// Gradient attribution methods against Captum's golden outputs (`tools/golden_attributions.py`).
final class AttributionParityTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let arch: String
        let num_classes: Int
        let input: GoldenInput
        let method: String
        let targets: [Int]
        let output: String
        let captum_delta: [Float]?
    }

    static let cases: [Case] = try! goldenCases("attributions/manifest.json")

    /// Networks are built once per architecture and class count (weights cost seconds in debug).
    nonisolated(unsafe) static var networks: [String: ResNet] = [:]

    func golden(_ name: String) throws -> (ResNet, Tensor, [Int], Tensor, Case) {
        let goldenCase = try XCTUnwrap(Self.cases.first { $0.name == name }, name)
        let key = "\(goldenCase.arch)-\(goldenCase.num_classes)"
        if Self.networks[key] == nil {
            let arch = try XCTUnwrap(ResNetArchitecture.named(goldenCase.arch))
            Self.networks[key] = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: goldenCase.num_classes))
        }
        let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
        let expected = try NPY.readFloat32(fixtureURL("attributions/\(goldenCase.output)"))
        return (Self.networks[key]!, input, goldenCase.targets, expected, goldenCase)
    }

    func check(_ name: String, _ method: some AttributionMethod, tolerance: Double, scale: Float = 1,
               file: StaticString = #filePath, line: UInt = #line) throws -> Attribution {
        let (network, input, targets, expected, _) = try golden(name)
        let attribution = try method.attribute(network, inputs: input, targets: targets)
        XCTAssertEqual(attribution.values.shape, expected.shape, file: file, line: line)
        let error = relativeL2Error(attribution.values.scalars.map { $0 * scale }, expected.scalars)
        XCTAssertLessThanOrEqual(error, tolerance, "\(name): relative L2 error \(error)", file: file, line: line)
        print("\(name): relative L2 error vs Captum \(error)")
        return attribution
    }

    func testSaliencyInputXGradientGuidedBackpropDeconvolution() throws {
        _ = try check("r34_saliency", Saliency(), tolerance: 1e-3)
        _ = try check("r34_input_x_gradient", InputXGradient(), tolerance: 1e-3)
        _ = try check("r34_guided_backprop", ModifiedGradient(.guidedBackprop), tolerance: 1e-3)
        _ = try check("r34_deconvolution", ModifiedGradient(.deconvolution), tolerance: 1e-3)
        _ = try check("r18_saliency_signed", Saliency(signed: true), tolerance: 1e-3)
    }

    func testIntegratedGradientsEveryQuadrature() throws {
        for quadrature in Quadrature.allCases {
            let name = "r34_ig_\(quadrature.rawValue)"
            // Captum's trapezoid weights sum to (n−1)/n; Elucidate's to 1.
            let scale: Float = quadrature == .riemannTrapezoid ? 15.0 / 16.0 : 1
            let attribution = try check(name, IntegratedGradients(steps: 16, quadrature: quadrature, internalBatchSize: 8),
                                        tolerance: 5e-3, scale: scale)
            let delta = try XCTUnwrap(attribution.convergenceDelta)
            XCTAssertEqual(delta.count, 1)
            if quadrature != .riemannTrapezoid, let captum = try golden(name).4.captum_delta {
                XCTAssertEqual(delta[0], captum[0], accuracy: max(1e-4, abs(captum[0]) * 0.05), name)
            }
        }
    }

    func testIntegratedGradientsWithConstantBaselineAndPerRowTargets() throws {
        _ = try check("r18_ig_baseline", IntegratedGradients(steps: 20, baseline: .constant(0.25)), tolerance: 5e-3)
    }

    func testDeepLiftAndDeepLiftSHAP() throws {
        let attribution = try check("r34_deeplift", DeepLift(), tolerance: 5e-3)
        let captumDelta = try XCTUnwrap(try golden("r34_deeplift").4.captum_delta)
        XCTAssertEqual(try XCTUnwrap(attribution.convergenceDelta)[0], captumDelta[0], accuracy: 1e-3)
        _ = try check("r18_deeplift_baseline", DeepLift(baseline: .constant(0.25)), tolerance: 5e-3)
        let baselines = DeterministicWeights.input(key: "shap-baselines", shape: [3, 3, 64, 48])
        let shap = try check("r18_deeplift_shap", DeepLiftSHAP(baselines: baselines), tolerance: 5e-3)
        XCTAssertEqual(shap.convergenceDelta?.count, 2)
    }

    func testStochasticMethodsCorrelateWithCaptumAtManySamples() throws {
        let (network, input, targets, expected, _) = try golden("r18_nt_saliency_smoothgrad")
        let tunnel = NoiseTunnel(Saliency(signed: true, batchSize: 50), kind: .smoothgrad, samples: 500, stdev: 0.2,
                                 sampleBatchSize: 50, seed: 7)
        let smooth = try tunnel.attribute(network, inputs: input, targets: targets)
        let smoothCorrelation = pearson(smooth.values.scalars, expected.scalars)
        XCTAssertGreaterThanOrEqual(smoothCorrelation, 0.95)
        print("NoiseTunnel(Saliency) smoothgrad, 500 samples: correlation with Captum \(smoothCorrelation)")

        let (_, _, shapTargets, shapExpected, _) = try golden("r18_gradient_shap")
        let baselines = try NPY.readFloat32(fixtureURL("attributions/r18_gradient_shap_baselines.npy"))
        let shap = try GradientSHAP(samples: 500, baselines: .tensor(baselines), batchSize: 50, seed: 7)
            .attribute(network, inputs: input, targets: shapTargets)
        let shapCorrelation = pearson(shap.values.scalars, shapExpected.scalars)
        XCTAssertGreaterThanOrEqual(shapCorrelation, 0.95)
        print("GradientSHAP, 500 samples: correlation with Captum \(shapCorrelation)")
    }

    private func pearson(_ a: [Float], _ b: [Float]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0.0) { $0 + Double($1) } / n, mb = b.reduce(0.0) { $0 + Double($1) } / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) {
            sab += (Double(x) - ma) * (Double(y) - mb)
            saa += (Double(x) - ma) * (Double(x) - ma)
            sbb += (Double(y) - mb) * (Double(y) - mb)
        }
        return sab / (saa * sbb).squareRoot()
    }
}
