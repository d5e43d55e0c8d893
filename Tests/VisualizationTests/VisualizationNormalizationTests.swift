import Elucidate
import Foundation
import TestSupport
import XCTest

/// Captum parity of the normalisation (`_normalize_attr`) on the fixtures made by
/// tools/make_visualization_fixtures.py, and the cases where Captum fails.
final class VisualizationNormalizationTests: XCTestCase {
    struct Manifest: Decodable {
        struct Normalize: Decodable {
            struct Case: Decodable {
                let shape: [Int]
                let captumFails: [String]
            }
            let signs: [String]
            let outlierPercentages: [Double]
            let cases: [String: Case]
        }
        let normalize: Normalize
    }

    static func manifest() throws -> Manifest {
        let data = try Data(contentsOf: fixtureURL("visualization/manifest.json"))
        return try JSONDecoder().decode(Manifest.self, from: data)
    }

    static let signs: [String: VisualizationSign] = [
        "all": .all, "positive": .positive, "negative": .negative, "absolute_value": .absoluteValue,
    ]

    /// Every case × sign × outlier percentage equals Captum's map to 1e-6; where Captum
    /// fails, the map is blank (all zero, with a warning) or — for outlier percentage 100
    /// with some mass — every non-zero value of the sign becomes ±1.
    func testMatchesCaptum() throws {
        let manifest = try Self.manifest().normalize
        var worst: Float = 0
        var compared = 0
        for (name, entry) in manifest.cases.sorted(by: { $0.key < $1.key }) {
            let attr = try NPY.readFloat32(fixtureURL("visualization/normalize/\(name).attr.npy"))
            let expected = try NPY.readFloat32(fixtureURL("visualization/normalize/\(name).normalized.npy"))
            XCTAssertEqual(attr.shape, entry.shape)
            let map = try AttributionMap(summingChannelsOf: attr)
            let plane = map.width * map.height
            XCTAssertEqual(expected.shape, [manifest.signs.count, manifest.outlierPercentages.count, map.height, map.width])
            let reference = expected.scalars
            for (s, signName) in manifest.signs.enumerated() {
                let sign = try XCTUnwrap(Self.signs[signName])
                for (p, perc) in manifest.outlierPercentages.enumerated() {
                    let result = map.normalized(sign: sign, outlierPercentage: perc)
                    let key = "\(signName):\(Int(perc))"
                    let offset = (s * manifest.outlierPercentages.count + p) * plane
                    let captum = Array(reference[offset..<(offset + plane)])
                    if entry.captumFails.contains(key) {
                        XCTAssertTrue(captum.allSatisfy(\.isNaN), "\(name) \(key)")
                        let kept = map.values.map { v -> Float in
                            switch sign {
                            case .all: v
                            case .positive: max(v, 0)
                            case .negative: min(v, 0)
                            case .absoluteValue: abs(v)
                            }
                        }
                        if kept.allSatisfy({ $0 == 0 }) {
                            XCTAssertTrue(result.map.values.allSatisfy { $0 == 0 }, "\(name) \(key) should be blank")
                            XCTAssertNotNil(result.warning, "\(name) \(key)")
                        } else {
                            XCTAssertEqual(perc, 100, "\(name) \(key)")
                            XCTAssertNil(result.warning)
                            let expectedSaturated = kept.map { $0 == 0 ? Float(0) : (sign == .all ? ($0 > 0 ? 1 : -1) : 1) }
                            XCTAssertEqual(result.map.values, expectedSaturated, "\(name) \(key)")
                        }
                        continue
                    }
                    XCTAssertNil(result.warning, "\(name) \(key)")
                    for (a, e) in zip(result.map.values, captum) { worst = max(worst, abs(a - e)) }
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 100)
        XCTAssertLessThanOrEqual(worst, 1e-6, "largest difference from Captum: \(worst)")
        print("normalisation vs Captum: \(compared) maps, max abs error \(worst)")
    }

    func testChannelSumAndShapes() throws {
        let t = Tensor(shape: [2, 3, 1, 2], values: [1, 2, 10, 20, 100, 200, 7, 7, 7, 7, 7, 7])
        XCTAssertEqual(try AttributionMap(summingChannelsOf: t).values, [111, 222])
        XCTAssertEqual(try AttributionMap(summingChannelsOf: t, index: 1).values, [21, 21])
        XCTAssertEqual(try AttributionMap(summingChannelsOf: Tensor(shape: [1, 2], values: [3, 4])).values, [3, 4])
        XCTAssertThrowsError(try AttributionMap(summingChannelsOf: t, index: 2)) { error in
            XCTAssertTrue("\(error)".contains("item 2 does not exist"), "\(error)")
        }
        XCTAssertThrowsError(try AttributionMap(summingChannelsOf: Tensor(shape: [4], values: [1, 2, 3, 4])))
        XCTAssertThrowsError(try AttributionMap(summingChannelsOf: Tensor(shape: [1, 0, 2], values: [])))
        XCTAssertThrowsError(try AttributionMap(summingChannelsOf: Tensor(shape: [1, 1, 2], values: [1, .nan]))) { error in
            XCTAssertTrue("\(error)".contains("NaN"), "\(error)")
        }
    }

    func testBlankMapsWarnInsteadOfFailing() {
        let map = AttributionMap(width: 2, height: 2, values: [0, 1, 2, 3])
        let negative = map.normalized(sign: .negative, outlierPercentage: 2)
        XCTAssertEqual(negative.map.values, [0, 0, 0, 0])
        XCTAssertEqual(negative.warning, "the attribution map has no negative values: sign negative draws a blank map")
        let zero = AttributionMap(width: 1, height: 2, values: [0, 0]).normalized(sign: .all, outlierPercentage: 2)
        XCTAssertEqual(zero.warning, "the attribution map is all zero: sign all draws a blank map")
        XCTAssertThrowsError(try AttributionMap.validateOutlierPercentage(101))
        XCTAssertThrowsError(try AttributionMap.validateOutlierPercentage(-1))
        XCTAssertThrowsError(try AttributionMap.validateOutlierPercentage(.nan))
    }
}
