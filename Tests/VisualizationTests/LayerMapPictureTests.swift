import Elucidate
import Foundation
import TestSupport
import XCTest

/// Layer maps (N,C,h,w) drawn over a photo of another size through the library
/// (`PictureSettings.figure`, `Visualizer.write`): channels summed at the layer's resolution,
/// then the one map upsampled, as the (N,1,h,w) maps are.
final class LayerMapPictureTests: TemporaryFolderTestCase {
    /// A (2, 5, 3, 2) map of mixed signs, and its channel sum (2, 1, 3, 2) in Captum's order.
    private func mapAndChannelSum() -> (map: Tensor, sum: Tensor) {
        var random = SeededGenerator(seed: 13)
        let (n, c, plane) = (2, 5, 6)
        let values = random.floats(n * c * plane)
        var sums = [Float](repeating: 0, count: n * plane)
        for row in 0..<n {
            for i in 0..<plane {
                var s = values[row * c * plane + i]
                for channel in 1..<c { s += values[(row * c + channel) * plane + i] }
                sums[row * plane + i] = s
            }
        }
        return (Tensor(shape: [n, c, 3, 2], values: values), Tensor(shape: [n, 1, 3, 2], values: sums))
    }

    private let photo = RGBImage(width: 32, height: 40, pixels: (0..<(32 * 40 * 3)).map { UInt8($0 % 251) })

    func testAManyChannelMapDrawsAsItsChannelSum() throws {
        let (map, sum) = mapAndChannelSum()
        let settings = try PictureSettings(options: Options(["panels": .string("blended-heat-map:all,heat-map:positive,cam-overlay:positive")]))
        for index in 0..<2 {
            let many = try settings.figure(map, index: index, photo: photo)
            XCTAssertEqual(many.canvas, try settings.figure(sum, index: index, photo: photo).canvas, "row \(index)")
            XCTAssertEqual(many.normalizedMaps.first?.width, 32)
            XCTAssertEqual(many.normalizedMaps.first?.height, 40)
        }
        // Without a photo the sum is drawn at the layer's resolution.
        let bare = try PictureSettings(options: Options()).figure(map, photo: nil)
        XCTAssertEqual([bare.canvas.width, bare.canvas.height], [2, 3])
    }

    /// Summing then upsampling equals upsampling each channel then summing, up to float32
    /// rounding: each upsampled value is a convex combination of 4 map values (weights summing
    /// to 1), and a float32 sum of C terms errs by at most C·ε times the sum of their
    /// magnitudes, so both orders lie within (C + 4)·ε·Σ_c max|channel c| of the exact value.
    func testSummingFirstIsUpsamplingEachChannelWithinRounding() throws {
        let (map, sum) = mapAndChannelSum()
        let channels = map.shape[1], plane = 6
        let values = map.scalars
        let summedFirst = AttributionMap(width: 2, height: 3, values: Array(sum.scalars[0..<plane])).resized(width: 32, height: 40)
        var upsampledFirst = [Float](repeating: 0, count: 32 * 40)
        var magnitude: Float = 0
        for channel in 0..<channels {
            let plane = Array(values[(channel * plane)..<((channel + 1) * plane)])
            magnitude += plane.map(abs).max() ?? 0
            let resized = AttributionMap(width: 2, height: 3, values: plane).resized(width: 32, height: 40)
            for i in upsampledFirst.indices { upsampledFirst[i] += resized.values[i] }
        }
        let bound = 2 * Float(channels + 4) * Float.ulpOfOne * magnitude
        for (a, b) in zip(summedFirst.values, upsampledFirst) {
            XCTAssertLessThanOrEqual(abs(a - b), bound)
        }
    }

    func testVisualizerDrawsALayerMapOverTheInput() throws {
        let classifier = try ModelLoader.load(BuiltinModels.defaultName)
        let input = DeterministicWeights.input(shape: [2, 3, 28, 28])
        let (map, _) = mapAndChannelSum()
        let out = path("layer.png")
        try Visualizer.write(attributions: map, input: input, classifier: classifier, options: Options(["index": .number(1)]), to: out)
        let photo = try VisualizationPhoto.denormalized(input, preset: classifier.preset ?? .torchvision, index: 1)
        let expected = try PictureSettings(options: Options()).figure(map, index: 1, photo: photo).pngData()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), expected)

        // Another N, or a map without positions, is one clear error and no file.
        for bad in [Tensor(zeros: [1, 5, 3, 2]), Tensor(zeros: [2, 10])] {
            XCTAssertThrowsError(try Visualizer.write(attributions: bad, input: input, classifier: classifier, to: path("bad.png"))) {
                XCTAssertEqual(($0 as? ElucidateError)?.kind, .invalidArgument)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.png")))
    }
}
