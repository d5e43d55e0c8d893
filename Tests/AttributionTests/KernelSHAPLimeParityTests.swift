import Elucidate
@testable import ElucidateAttribution
import Foundation
import TestSupport
import XCTest

/// Kernel SHAP and LIME against Captum 0.9 (`tools/golden_perturbation.py --only surrogates`):
/// the attributions correlate at many samples, and on the very rows Captum fitted its
/// surrogates to, Elucidate's solvers give scikit-learn's coefficients.
final class KernelSHAPLimeParityTests: XCTestCase {
    /// A surrogate case of `perturbation/manifest.json` (the other cases decode with `fit` nil).
    struct GoldenCase: Decodable {
        struct Input: Decodable {
            let key: String
            let shape: [Int]
            /// The deterministic input is multiplied by this (a power of two, so exactly).
            let scale: Float?
        }
        struct Options: Decodable {
            let grid: Int?
            let samples: Int?
        }
        struct Solution: Decodable {
            let intercept: Double
            let coefficients: [Double]
        }
        struct Fit: Decodable {
            let data: String
            let features: Int
            let least_squares: Solution?
            let lasso: Solution?
            let lasso_sklearn_defaults: Solution?
        }
        let name: String
        let input: Input
        let options: Options
        let fit: Fit?
    }

    /// The rows a surrogate was fitted to: coalition indicators, the target's logit, the weight.
    struct SurrogateRows {
        let x: [[Double]]
        let y: [Double]
        let weights: [Double]
    }

    struct Golden {
        let network: ResNet
        let input: Tensor
        let targets: [Int]
        let mask: FeatureMask
        /// Captum's attributions (N, C, H, W) and, per feature, its coefficient.
        let expected: Tensor
        let expectedCoefficients: [Double]
        let fit: GoldenCase.Fit
        let rows: SurrogateRows
    }

    static func golden(_ name: String) throws -> Golden {
        let cases = try goldenCases("perturbation/manifest.json", as: GoldenCase.self)
        let goldenCase = try XCTUnwrap(cases.first { $0.name == name }, name)
        let fit = try XCTUnwrap(goldenCase.fit, "\(name) has no surrogate rows")
        let (network, unscaled, targets, expected) = try PerturbationGolden.load(name)
        let scale = goldenCase.input.scale ?? 1
        let input = Tensor(shape: unscaled.shape, values: unscaled.scalars.map { $0 * scale })
        let (height, width) = (unscaled.shape[2], unscaled.shape[3])
        let mask = try FeatureMask.grid(try XCTUnwrap(goldenCase.options.grid), height: height, width: width)
        let coefficients = (0..<fit.features).map { feature in
            Double(expected.scalars[mask.ids.firstIndex(of: Int32(feature))!])
        }
        let table = try NPY.readFloat32(fixtureURL("perturbation/\(fit.data)"))
        XCTAssertEqual(table.shape, [goldenCase.options.samples ?? -1, 3])
        let values = table.scalars
        let rows = SurrogateRows(
            x: (0..<table.shape[0]).map { row in
                let bits = Int(values[row * 3])
                return (0..<fit.features).map { Double((bits >> $0) & 1) }
            },
            y: (0..<table.shape[0]).map { Double(values[$0 * 3 + 1]) },
            weights: (0..<table.shape[0]).map { Double(values[$0 * 3 + 2]) })
        return Golden(network: network, input: input, targets: targets, mask: mask, expected: expected,
                      expectedCoefficients: coefficients, fit: fit, rows: rows)
    }

    /// ‖actual − expected‖ / ‖expected‖ over the intercept and the coefficients together.
    func relativeError(_ actual: (intercept: Double, coefficients: [Double]), _ expected: GoldenCase.Solution) -> Double {
        let a = [actual.intercept] + actual.coefficients, e = [expected.intercept] + expected.coefficients
        precondition(a.count == e.count)
        let difference = zip(a, e).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return (difference / e.reduce(0.0) { $0 + $1 * $1 }).squareRoot()
    }

    func relativeError(_ actual: [Double], _ expected: [Double]) -> Double {
        let difference = zip(actual, expected).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return (difference / expected.reduce(0.0) { $0 + $1 * $1 }).squareRoot()
    }

    // MARK: - Attributions at many samples

    /// `make(mask)` on golden `name`'s network and input correlates with Captum's at 0.9 or better.
    func assertCorrelatesWithCaptum(_ name: String, _ label: String, file: StaticString = #filePath, line: UInt = #line,
                                    _ make: (FeatureMask) -> some AttributionMethod) throws {
        let golden = try Self.golden(name)
        let attribution = try make(golden.mask).attribute(golden.network, inputs: golden.input, targets: golden.targets)
        let correlation = pearsonCorrelation(attribution.values.scalars, golden.expected.scalars)
        print("\(label): correlation \(correlation)")
        XCTAssertGreaterThanOrEqual(correlation, 0.9, label, file: file, line: line)
    }

    func testKernelSHAPCorrelatesWithCaptum() throws {
        try assertCorrelatesWithCaptum("r18_kernel_shap_grid4", "KernelSHAP, 1000 samples vs Captum's KernelShap (5000 samples)") {
            KernelSHAP(mask: $0, samples: 1000, perturbationsPerEval: 50, seed: 3)
        }
    }

    func testLIMELassoCorrelatesWithCaptum() throws {
        try assertCorrelatesWithCaptum("r18_lime_lasso_grid4", "LIME (Lasso α = 0.01), 300 samples vs Captum's Lime (2000 samples)") {
            LIME(mask: $0, samples: 300, perturbationsPerEval: 50, seed: 3)
        }
    }

    func testLIMELeastSquaresCorrelatesWithCaptum() throws {
        try assertCorrelatesWithCaptum("r18_lime_least_squares_grid4",
                                       "LIME (least squares), 300 samples vs Captum's Lime with LinearRegression (2000 samples)") {
            LIME(mask: $0, samples: 300, surrogate: .leastSquares, perturbationsPerEval: 50, seed: 3)
        }
    }

    // MARK: - Solvers on Captum's rows

    func testLeastSquaresMatchesScikitLearnOnCaptumRows() throws {
        for name in ["r18_kernel_shap_grid4", "r18_lime_least_squares_grid4"] {
            let golden = try Self.golden(name)
            let reference = try XCTUnwrap(golden.fit.least_squares)
            let solution = try weightedLeastSquares(golden.rows.x, golden.rows.y, weights: golden.rows.weights)
            let error = relativeError(solution, reference)
            // Captum ran scikit-learn on float32 copies of the same rows.
            let captumError = relativeError(golden.expectedCoefficients, reference.coefficients)
            print("\(name): weighted least squares vs scikit-learn LinearRegression (float64) on Captum's "
                  + "\(golden.rows.y.count) rows: relative error \(error); Captum's float32 fit vs the same: \(captumError)")
            XCTAssertLessThanOrEqual(error, 1e-6, name)
            XCTAssertLessThanOrEqual(relativeError(solution.coefficients, golden.expectedCoefficients), 1e-4, name)
        }
    }

    func testLassoMatchesScikitLearnOnCaptumRows() throws {
        let golden = try Self.golden("r18_lime_lasso_grid4")
        let converged = try XCTUnwrap(golden.fit.lasso)
        let defaults = try XCTUnwrap(golden.fit.lasso_sklearn_defaults)
        let solution = weightedLasso(golden.rows.x, golden.rows.y, weights: golden.rows.weights, alpha: 0.01)
        let error = relativeError(solution, converged)
        let defaultsError = relativeError(solution, defaults)
        let captumError = relativeError(solution.1, golden.expectedCoefficients)
        print("Lasso α = 0.01 vs scikit-learn (float64) on Captum's \(golden.rows.y.count) rows: relative error \(error) "
              + "(converged, tol 1e-12), \(defaultsError) (scikit-learn's default tol 1e-4); vs Captum's coefficients \(captumError)")
        XCTAssertLessThanOrEqual(error, 1e-6)
        XCTAssertLessThanOrEqual(defaultsError, 1e-5)
        XCTAssertLessThanOrEqual(captumError, 1e-5)
        // The penalty zeroes the same features.
        XCTAssertEqual(solution.1.map { $0 == 0 }, converged.coefficients.map { $0 == 0 })
    }
}
