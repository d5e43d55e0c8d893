import Elucidate
@testable import ElucidateAttribution
import TestSupport
import XCTest

final class QuadratureTests: XCTestCase {
    func testGaussLegendreMatchesNumpyLeggauss() {
        let (x, w) = Quadrature.legendre(5)
        let numpyX = [-0.906179845938664, -0.538469310105683, 0, 0.538469310105683, 0.906179845938664]
        let numpyW = [0.236926885056189, 0.478628670499366, 0.568888888888889, 0.478628670499366, 0.236926885056189]
        for i in 0..<5 {
            XCTAssertEqual(x[i], numpyX[i], accuracy: 1e-14)
            XCTAssertEqual(w[i], numpyW[i], accuracy: 1e-14)
        }
    }

    func testEveryRuleIntegratesToOneOnAConstant() {
        for rule in Quadrature.allCases {
            let weights = rule.nodes(steps: 16).weights
            XCTAssertEqual(weights.reduce(0, +), 1, accuracy: 1e-12, rule.rawValue)
        }
    }

    /// ∫₀¹ α² dα = 1/3. Gauss–Legendre is exact; the trapezoid rule errs by 1/(6(n−1)²);
    /// Captum's trapezoid weights (each 1/n instead of 1/(n−1)) fall short by a factor
    /// (n−1)/n, which is why Elucidate's trapezoid attributions are Captum's × n/(n−1).
    func testKnownIntegralShowsCaptumTrapezoidShortfall() {
        let n = 16
        func integrate(_ rule: Quadrature) -> Double {
            let (alphas, weights) = rule.nodes(steps: n)
            return zip(alphas, weights).reduce(0) { $0 + $1.1 * $1.0 * $1.0 }
        }
        XCTAssertEqual(integrate(.gaussLegendre), 1.0 / 3, accuracy: 1e-14)
        let trapezoid = integrate(.riemannTrapezoid)
        XCTAssertEqual(trapezoid, 1.0 / 3 + 1.0 / (6.0 * Double((n - 1) * (n - 1))), accuracy: 1e-12)
        let captumTrapezoid = trapezoid * Double(n - 1) / Double(n)
        XCTAssertGreaterThan(abs(captumTrapezoid - 1.0 / 3), 0.015)  // Captum's rule is 6 % low here
        XCTAssertEqual(integrate(.riemannMiddle), 1.0 / 3, accuracy: 1 / (12.0 * Double(n * n)) + 1e-12)
        XCTAssertLessThan(integrate(.riemannLeft), 1.0 / 3)
        XCTAssertGreaterThan(integrate(.riemannRight), 1.0 / 3)
    }

    func testRiemannPointsFollowCaptum() {
        XCTAssertEqual(Quadrature.riemannLeft.nodes(steps: 4).alphas, [0, 0.25, 0.5, 0.75])
        XCTAssertEqual(Quadrature.riemannRight.nodes(steps: 4).alphas, [0.25, 0.5, 0.75, 1])
        XCTAssertEqual(Quadrature.riemannMiddle.nodes(steps: 4).alphas, [0.125, 0.375, 0.625, 0.875])
        XCTAssertEqual(Quadrature.riemannTrapezoid.nodes(steps: 3).alphas, [0, 0.5, 1])
        XCTAssertEqual(Quadrature.riemannTrapezoid.nodes(steps: 3).weights, [0.25, 0.5, 0.25])
    }
}
