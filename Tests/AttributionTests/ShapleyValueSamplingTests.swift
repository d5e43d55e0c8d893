import Elucidate
import Foundation
import TestSupport
import XCTest

/// Shapley value sampling: reproducible under a seed, converging to the exact Shapley values,
/// and correlated with Captum's at many samples (`tools/golden_perturbation.py`).
final class ShapleyValueSamplingTests: XCTestCase {
    /// Two classes of a nonlinear function of four pixels (one feature each).
    struct TinyModel: AttributionModel {
        var classes: Int { 2 }
        static func score(_ x: [Float]) -> [Float] {
            [x[0] * x[1] + 2 * x[2] - x[3] * x[3] + x[0] * x[2] * x[3], max(0, x[0] - x[1]) + x[2] * x[3]]
        }
        func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
            let rows = input.shape[0]
            var out: [Float] = []
            for row in 0..<rows { out += Self.score(Array(input.scalars[(row * 4)..<(row * 4 + 4)])) }
            return Tensor(shape: [rows, 2], values: out)
        }
        func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
            throw ElucidateError(.invalidArgument, "no gradients")
        }
    }

    static let mask = try! FeatureMask(shape: [1, 1, 2, 2], ids: [0, 1, 2, 3])

    /// Shapley values by enumerating all 24 orders.
    func exactShapley(_ x: [Float], baseline: Float, target: Int) -> [Float] {
        var sums = [Double](repeating: 0, count: 4)
        func permutations(_ items: [Int]) -> [[Int]] {
            items.count <= 1 ? [items] : items.indices.flatMap { i in
                permutations(Array(items[..<i] + items[(i + 1)...])).map { [items[i]] + $0 }
            }
        }
        let orders = permutations([0, 1, 2, 3])
        for order in orders {
            var current = [Float](repeating: baseline, count: 4)
            var previous = TinyModel.score(current)[target]
            for feature in order {
                current[feature] = x[feature]
                let score = TinyModel.score(current)[target]
                sums[feature] += Double(score - previous)
                previous = score
            }
        }
        return sums.map { Float($0 / Double(orders.count)) }
    }

    func testConvergesToExactShapleyValues() throws {
        let input = Tensor(shape: [2, 1, 2, 2], values: [0.7, -1.2, 0.4, 1.5, -0.3, 0.9, 1.1, -0.8])
        let targets = [0, 1]
        let attribution = try ShapleyValueSampling(mask: Self.mask, baseline: .constant(0.1), samples: 3000, seed: 5)
            .attribute(TinyModel(), inputs: input, targets: targets)
        for row in 0..<2 {
            let exact = exactShapley(Array(input.scalars[(row * 4)..<(row * 4 + 4)]), baseline: 0.1, target: targets[row])
            let sampled = Array(attribution.values.scalars[(row * 4)..<(row * 4 + 4)])
            let error = relativeL2Error(sampled, exact)
            print("Shapley value sampling, 3000 samples, row \(row): relative L2 error vs exact \(error)")
            XCTAssertLessThanOrEqual(error, 0.05, "row \(row): \(sampled) vs \(exact)")
            // Efficiency holds for every sampled order: Σφ = F(x) − F(baseline).
            let total = TinyModel.score(Array(input.scalars[(row * 4)..<(row * 4 + 4)]))[targets[row]]
                - TinyModel.score([0.1, 0.1, 0.1, 0.1])[targets[row]]
            XCTAssertEqual(sampled.reduce(0, +), total, accuracy: 1e-4)
        }
    }

    func testSeedMakesItReproducible() throws {
        let input = Tensor(shape: [1, 1, 2, 2], values: [0.7, -1.2, 0.4, 1.5])
        func run(_ seed: UInt64) throws -> [Float] {
            try ShapleyValueSampling(mask: Self.mask, samples: 3, perturbationsPerEval: 5, seed: seed)
                .attribute(TinyModel(), inputs: input, targets: [0]).values.scalars
        }
        XCTAssertEqual(try run(9), try run(9))
        XCTAssertNotEqual(try run(9), try run(10))
    }

    func testCorrelatesWithCaptumAtManySamples() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r18_shapley_grid3")
        let attribution = try ShapleyValueSampling(mask: FeatureMask.grid(3, height: 64, width: 48), samples: 60,
                                                   perturbationsPerEval: 60, seed: 1)
            .attribute(network, inputs: input, targets: targets)
        let correlation = pearsonCorrelation(attribution.values.scalars, expected.scalars)
        print("ShapleyValueSampling, 60 samples vs Captum's 400: correlation \(correlation)")
        XCTAssertGreaterThanOrEqual(correlation, 0.9)
    }
}

func pearsonCorrelation(_ a: [Float], _ b: [Float]) -> Double {
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
