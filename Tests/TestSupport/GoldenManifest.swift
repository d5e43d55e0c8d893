import Foundation

/// The deterministic input of a golden case: `DeterministicWeights.input(key:shape:)`.
public struct GoldenInput: Decodable, Sendable {
    public let key: String
    public let shape: [Int]
}

/// The `cases` of a `manifest.json` written by a `tools/` golden script, decoded as `Case`.
public func goldenCases<Case: Decodable>(_ manifestPath: String, as _: Case.Type = Case.self) throws -> [Case] {
    struct Manifest: Decodable { let cases: [Case] }
    let data = try Data(contentsOf: fixtureURL(manifestPath))
    return try JSONDecoder().decode(Manifest.self, from: data).cases
}
