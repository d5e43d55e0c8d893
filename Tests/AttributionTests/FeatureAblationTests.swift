import Elucidate
import Foundation
import TestSupport
import XCTest

/// Feature ablation against Captum (`tools/golden_perturbation.py`) and its masks.
final class FeatureAblationTests: XCTestCase {
    func testGridMatchesCaptumOnResNet34() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r34_feature_ablation_grid")
        let attribution = try FeatureAblation(mask: FeatureMask.grid(4, height: 224, width: 224))
            .attribute(network, inputs: input, targets: targets)
        let error = relativeL2Error(attribution.values.scalars, expected.scalars)
        print("r34_feature_ablation_grid: relative L2 error vs Captum \(error)")
        XCTAssertLessThanOrEqual(error, 1e-3)
        XCTAssertEqual(attribution.details["features"], "16")
    }

    func testPerChannelMaskWithBaselineMatchesCaptum() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r18_feature_ablation_mask")
        let file = try NPY.readInt32(fixtureURL("perturbation/r18_feature_mask.npy"))
        // Captum's mask has sparse ids (5…35 with gaps); Elucidate takes ids 0…K−1 only, and
        // numbering the same groups by rank gives the same attributions.
        XCTAssertThrowsError(try FeatureMask(shape: file.shape, ids: file.values))
        let rank = Dictionary(uniqueKeysWithValues: Set(file.values).sorted().enumerated().map { ($1, Int32($0)) })
        let mask = try FeatureMask(shape: file.shape, ids: file.values.map { rank[$0]! })
        let attribution = try FeatureAblation(mask: mask, baseline: .constant(0.25), perturbationsPerEval: 5)
            .attribute(network, inputs: input, targets: targets)
        let error = relativeL2Error(attribution.values.scalars, expected.scalars)
        print("r18_feature_ablation_mask: relative L2 error vs Captum \(error)")
        XCTAssertLessThanOrEqual(error, 1e-3)
    }

    func testGridCellsAndBroadcasting() throws {
        let grid = try FeatureMask.grid(3, height: 7, width: 5)
        XCTAssertEqual(grid.shape, [1, 1, 7, 5])
        XCTAssertEqual(Set(grid.ids).count, 9)
        XCTAssertEqual(grid.ids[0], 0)
        XCTAssertEqual(grid.ids[6 * 5 + 4], 8)
        XCTAssertThrowsError(try FeatureMask.grid(8, height: 7, width: 5))
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 2))
        let input = DeterministicWeights.input(shape: [1, 3, 32, 32])
        let bad = try FeatureMask(shape: [1, 1, 16, 32], ids: [Int32](repeating: 0, count: 16 * 32))
        XCTAssertThrowsError(try FeatureAblation(mask: bad).attribute(network, inputs: input, targets: [0]))
        // One feature covering everything: every element gets F(x) − F(baseline).
        for (ids, message) in [([0, 2, 2, 3], "not 1"), ([1, 1, 2, 2], "not 0"), ([0, -1, 1, 1], "negative id -1")] as [([Int32], String)] {
            XCTAssertThrowsError(try FeatureMask(shape: [1, 1, 2, 2], ids: ids)) { error in
                XCTAssertTrue("\(error)".contains("0…K−1") && "\(error)".contains(message), "\(error)")
            }
        }
        let one = try FeatureMask(shape: [1], ids: [0])
        let attribution = try FeatureAblation(mask: one).attribute(network, inputs: input, targets: [1])
        let drop = try network.logits(input)[0, 1] - network.logits(Tensor(zeros: input.shape))[0, 1]
        XCTAssertEqual(attribution.values.scalars.first!, drop, accuracy: 1e-5)
        XCTAssertEqual(Set(attribution.values.scalars).count, 1)
    }
}
