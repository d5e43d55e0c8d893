import CKernels
import Elucidate
@testable import ElucidateAttribution
import Foundation
import TestSupport
import XCTest

/// Kernel SHAP: exact on linear models, reproducible under a seed, and close to Shapley
/// values on a ResNet (Captum's ShapleyValueSampling golden, `tools/golden_perturbation.py`).
final class KernelSHAPSamplingTests: XCTestCase {
    struct LinearModel: AttributionModel {
        static let weights: [Float] = [0.5, -1.5, 2, 0.25]
        var classes: Int { 1 }
        func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
            let rows = input.shape[0]
            return Tensor(shape: [rows, 1], values: (0..<rows).map { row in
                0.3 + (0..<4).reduce(Float(0)) { $0 + Self.weights[$1] * input.scalars[row * 4 + $1] }
            })
        }
        func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
            throw ElucidateError(.invalidArgument, "no gradients")
        }
    }

    func testWeightedLeastSquaresRecoversALinearFunction() throws {
        var random = SeededRandom(seed: 3)
        let x = (0..<20).map { _ in (0..<3).map { _ in random.nextUniform() } }
        let y = x.map { 1.5 + 2 * $0[0] - $0[1] + 0.5 * $0[2] }
        let (intercept, beta) = try weightedLeastSquares(x, y, weights: (0..<20).map { Double($0 % 3 + 1) })
        XCTAssertEqual(intercept, 1.5, accuracy: 1e-9)
        XCTAssertEqual(beta[0], 2, accuracy: 1e-9)
        XCTAssertEqual(beta[1], -1, accuracy: 1e-9)
        XCTAssertEqual(beta[2], 0.5, accuracy: 1e-9)
    }

    func testWeightedLeastSquaresGivesTheMinimumNormSolutionWhenSamplesDoNotDecide() throws {
        // Features 0 and 1 are always switched together and feature 3 is always on: any split
        // of their joint effect 3 fits, and feature 3's effect is the intercept's. scikit-learn's
        // LinearRegression gives the minimum-norm coefficients: 1.5 each, and 0.
        let x: [[Double]] = [[0, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]]
        let y = x.map { 0.5 + 3 * $0[0] - 2 * $0[2] }
        let (intercept, beta) = try weightedLeastSquares(x, y, weights: [1, 2, 1, 3, 0.5])
        XCTAssertEqual(intercept, 0.5, accuracy: 1e-12)
        for (actual, expected) in zip(beta, [1.5, 1.5, -2, 0]) { XCTAssertEqual(actual, expected, accuracy: 1e-12) }
        // Fewer samples than features: centred, the two samples say only β₀ − β₁ − β₂ = −2,
        // whose minimum-norm solution is −2·(1, −1, −1)/3.
        let (_, underdetermined) = try weightedLeastSquares([[1, 0, 0], [0, 1, 1]], [2, 4], weights: [1, 1])
        for (actual, expected) in zip(underdetermined, [-2.0 / 3, 2.0 / 3, 2.0 / 3]) {
            XCTAssertEqual(actual, expected, accuracy: 1e-12)
        }
    }

    func testWeightedLeastSquaresRefusesBadInputWithATypedError() {
        func assertRefused(_ x: [[Double]], _ y: [Double], _ weights: [Double], line: UInt = #line) {
            XCTAssertThrowsError(try weightedLeastSquares(x, y, weights: weights), line: line) { error in
                XCTAssertEqual((error as? ElucidateError)?.kind, .invalidArgument, "\(error)", line: line)
            }
        }
        assertRefused([], [], [])
        assertRefused([[1], [2]], [1], [1, 1])
        assertRefused([[1], [2, 3]], [1, 2], [1, 1])
        assertRefused([[1], [2]], [1, .nan], [1, 1])
        assertRefused([[1], [.infinity]], [1, 2], [1, 1])
        assertRefused([[1], [2]], [1, 2], [0, 0])
        assertRefused([[1], [2]], [1, 2], [1, -1])
    }

    func testMissingLAPACKEIsOneClearError() {
        let error = LinearAlgebra.error(EK_ERR_LAPACK_UNAVAILABLE)
        XCTAssertEqual(error.kind, .internalFailure)
        XCTAssertTrue(error.description.hasPrefix("LAPACKE could not be loaded (install liblapacke): "), error.description)
        XCTAssertTrue(Runtime.lapack.loaded, Runtime.lapack.error ?? "")
    }

    func testExactOnALinearModel() throws {
        let mask = try FeatureMask(shape: [1, 1, 2, 2], ids: [0, 1, 2, 3])
        let input = Tensor(shape: [1, 1, 2, 2], values: [0.7, -1.2, 0.4, 1.5])
        let attribution = try KernelSHAP(mask: mask, baseline: .constant(0.2), samples: 30, seed: 4)
            .attribute(LinearModel(), inputs: input, targets: [0])
        let expected = (0..<4).map { LinearModel.weights[$0] * (input.scalars[$0] - 0.2) }
        assertClose(attribution.values.scalars, expected, rtol: 1e-4, atol: 1e-5)
    }

    func testSeedMakesItReproducible() throws {
        let (network, input, targets, _) = try PerturbationGolden.load("r18_shapley_grid3")
        let mask = try FeatureMask.grid(3, height: 64, width: 48)
        func run(_ seed: UInt64) throws -> [Float] {
            try KernelSHAP(mask: mask, samples: 12, seed: seed).attribute(network, inputs: input, targets: targets).values.scalars
        }
        XCTAssertEqual(try run(1), try run(1))
        XCTAssertNotEqual(try run(1), try run(2))
    }

    func testApproachesShapleyValuesOnResNet() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r18_shapley_grid3")
        let attribution = try KernelSHAP(mask: FeatureMask.grid(3, height: 64, width: 48), samples: 300, perturbationsPerEval: 50,
                                         seed: 2).attribute(network, inputs: input, targets: targets)
        let correlation = pearsonCorrelation(attribution.values.scalars, expected.scalars)
        print("KernelSHAP, 300 samples vs Captum's ShapleyValueSampling (400 samples): correlation \(correlation)")
        XCTAssertGreaterThanOrEqual(correlation, 0.9)
    }
}

/// LIME: its surrogates and reproducibility.
final class LIMESamplingTests: XCTestCase {
    func testLassoWithoutPenaltyIsLeastSquaresAndPenaltyShrinks() throws {
        var random = SeededRandom(seed: 8)
        let x = (0..<40).map { _ in (0..<3).map { _ in Double(random.next() >> 63) } }
        let y = x.map { 0.5 + 1.2 * $0[0] - 0.7 * $0[1] + 0.01 * $0[2] }
        let w = (0..<40).map { Double($0 % 4 + 1) }
        let (b0, ls) = try weightedLeastSquares(x, y, weights: w)
        let (b1, lasso) = weightedLasso(x, y, weights: w, alpha: 0)
        XCTAssertEqual(b0, b1, accuracy: 1e-5)
        for j in 0..<3 { XCTAssertEqual(ls[j], lasso[j], accuracy: 1e-5) }
        let (_, shrunk) = weightedLasso(x, y, weights: w, alpha: 0.05)
        XCTAssertEqual(shrunk[2], 0, "a small coefficient is zeroed by the penalty")
        XCTAssertLessThan(abs(shrunk[0]), 1.2)
    }

    func testLeastSquaresSurrogateIsExactOnALinearModel() throws {
        let mask = try FeatureMask(shape: [1, 1, 2, 2], ids: [0, 1, 2, 3])
        let input = Tensor(shape: [1, 1, 2, 2], values: [0.7, -1.2, 0.4, 1.5])
        let attribution = try LIME(mask: mask, baseline: .constant(0.2), samples: 40, surrogate: .leastSquares, seed: 4)
            .attribute(KernelSHAPSamplingTests.LinearModel(), inputs: input, targets: [0])
        let expected = (0..<4).map { KernelSHAPSamplingTests.LinearModel.weights[$0] * (input.scalars[$0] - 0.2) }
        assertClose(attribution.values.scalars, expected, rtol: 1e-4, atol: 1e-5)
        let lasso = try LIME(mask: mask, baseline: .constant(0.2), samples: 40, seed: 4)
            .attribute(KernelSHAPSamplingTests.LinearModel(), inputs: input, targets: [0])
        XCTAssertGreaterThan(pearsonCorrelation(lasso.values.scalars, expected), 0.99)
    }

    func testCorrelatesWithShapleyValuesOnResNetAtManySamples() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r18_shapley_grid3")
        let attribution = try LIME(mask: FeatureMask.grid(3, height: 64, width: 48), samples: 300, surrogate: .leastSquares,
                                   perturbationsPerEval: 50, seed: 2).attribute(network, inputs: input, targets: targets)
        let correlation = pearsonCorrelation(attribution.values.scalars, expected.scalars)
        print("LIME (least squares), 300 samples vs Captum's ShapleyValueSampling: correlation \(correlation)")
        XCTAssertGreaterThanOrEqual(correlation, 0.8)
    }
}
