@testable import ElucidateEvaluation
import Elucidate
import TestSupport
import XCTest

/// The definitions behind deletion and insertion that need no model: order, counts, AUC, blur.
final class PixelOrderTests: XCTestCase {
    func testOrderSumsChannelsAndBreaksTiesByIndex() throws {
        // Two channels of a 2×2 map: sums [1, 3, 1, 3] → 1 and 3 (tie, lower index first), then 0 and 2.
        let map = Tensor(shape: [2, 2, 2], values: [0.5, 1, 0.5, 2, 0.5, 2, 0.5, 1])
        XCTAssertEqual(try PixelOrder(attributions: map).indices, [1, 3, 0, 2])
    }

    func testCountsRoundHalvesToEvenAsPython() {
        // round(k·H·W/S) for H·W = 10, S = 4: 0, 2.5 → 2, 5, 7.5 → 8, 10.
        XCTAssertEqual((0...4).map { PixelOrder.count(step: $0, of: 4, pixels: 10) }, [0, 2, 5, 8, 10])
        XCTAssertEqual(PixelOrder.count(step: 1, of: 4, pixels: 14), 4)  // 3.5 → 4
    }

    func testAUCIsTheTrapezoidRule() {
        XCTAssertEqual(RemovalCurve(scores: [1, 0.5, 0]).auc, 0.5, accuracy: 1e-12)
        XCTAssertEqual(RemovalCurve(scores: [0, 1, 1, 0]).auc, 2.0 / 3, accuracy: 1e-12)
    }

    func testAverageRanksForTies() {
        XCTAssertEqual(MapSimilarity.ranks([3, 1, 3, 2]), [3.5, 1, 3.5, 2])
        XCTAssertTrue(MapSimilarity.spearman([1, 1, 1], [1, 2, 3]).isNaN)  // SciPy: nan for a constant side
    }

    func testSSIMOfAMapWithItselfIsOne() throws {
        let map = (0..<100).map { Double($0 % 7) / 6 }
        XCTAssertEqual(try MapSimilarity.ssim(map, map, height: 10, width: 10, dataRange: 1), 1, accuracy: 1e-12)
        XCTAssertThrowsError(try MapSimilarity.ssim([0], [0], height: 1, width: 1, dataRange: 1))
    }

    func testRISEKernelSumsToOneAndIsSymmetric() {
        let kernel = RISEBlur.kernel
        XCTAssertEqual(kernel.count, 121)
        XCTAssertEqual(kernel.reduce(0, +), 1, accuracy: 1e-5)
        for i in 0..<121 { XCTAssertEqual(kernel[i], kernel[120 - i]) }
    }
}
