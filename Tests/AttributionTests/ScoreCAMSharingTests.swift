@testable import ElucidateAttribution
import Elucidate
import TestSupport
import XCTest

/// Score-CAM runs one masked copy per distinct activation map: channels with equal maps
/// (notably the all-zero ones of a sparse late layer) share one forward pass and one score.
final class ScoreCAMSharingTests: XCTestCase {
    /// Six channels, three distinct maps (zero twice, one map repeated, one other): three
    /// masked copies run, in two passes of two; equal maps get bit-for-bit equal weights, and
    /// every weight is the softmax of scores computed one channel at a time.
    func testEqualMapsShareOneForwardPass() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 10))
        let input = DeterministicWeights.input(key: "score_cam_sharing", shape: [1, 3, 32, 32])
        let maps: [[Float]] = [[0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 0, 0]]
        let activations = Tensor(shape: [1, maps.count, 2, 2], values: maps.flatMap { $0 })
        let target = 3
        nonisolated(unsafe) var reports: [(Int, Int)] = []
        let weights = try ScoreCAM.weights(network, inputs: input, activations: activations, targets: [target],
                                           batchSize: 2, progress: { reports.append(($0, $1)) }).scalars
        XCTAssertEqual(reports.map(\.0), [1, 2])
        XCTAssertEqual(reports.map(\.1), [2, 2])
        XCTAssertEqual(weights[0].bitPattern, weights[2].bitPattern)
        XCTAssertEqual(weights[0].bitPattern, weights[5].bitPattern)
        XCTAssertEqual(weights[1].bitPattern, weights[3].bitPattern)

        // The same weights, each channel's masked copy built and scored on its own.
        let plane = 32 * 32
        var scores: [Double] = []
        for map in maps {
            var mask = [Float](repeating: 0, count: plane)
            map.withUnsafeBufferPointer {
                CAMPostprocessing.resizeAlignCorners($0, height: 2, width: 2, toHeight: 32, toWidth: 32, into: &mask)
            }
            let low = mask.min()!, scale = mask.max()! - low + 1e-8
            let x = input.scalars
            let masked = (0..<(3 * plane)).map { x[$0] * ((mask[$0 % plane] - low) / scale) }
            let logits = try network.logits(Tensor(shape: [1, 3, 32, 32], values: masked))
            scores.append(Double(logits.scalars[target]))
        }
        let top = scores.max()!
        let sum = scores.map { exp($0 - top) }.reduce(0, +)
        for (channel, score) in scores.enumerated() {
            // Batched and one-at-a-time passes may round differently: a few float32 ulps of a
            // logit, scaled by the softmax (whose derivative is at most 1/4 in each score).
            XCTAssertEqual(Double(weights[channel]), exp(score - top) / sum, accuracy: 1e-5, "channel \(channel)")
        }
    }
}
