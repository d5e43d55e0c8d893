import Foundation

/// The deterministic input of a golden case: `DeterministicWeights.input(key:shape:)`.
public struct GoldenInput: Decodable, Sendable {
    public let key: String
    public let shape: [Int]
}

/// A `manifest.json` written by a `tools/` golden script: its cases, decoded as `Case`.
private struct GoldenManifest<Case: Decodable>: Decodable {
    let cases: [Case]
}

/// The `cases` of a golden manifest under Tests/Fixtures.
public func goldenCases<Case: Decodable>(_ manifestPath: String, as _: Case.Type = Case.self) throws -> [Case] {
    let data = try Data(contentsOf: fixtureURL(manifestPath))
    return try JSONDecoder().decode(GoldenManifest<Case>.self, from: data).cases
}
