import Foundation

/// One option's value, as a JSON document or a command line gives it.
///
/// Keys and values follow the command line: `.string("3,15,15")` and
/// `.array([.number(3), .number(15), .number(15)])` mean the same window, and a number may
/// come as `.number(200)` or `.string("200")`.
public enum OptionValue: Sendable, Equatable {
    /// A number, integer or not (`200`, `0.5`).
    case number(Double)
    /// A flag (`--signed`, `--colorbar`).
    case bool(Bool)
    /// Any value as the command line writes it (`"smoothgrad-sq"`, `"3,15,15"`, `"200"`).
    case string(String)
    /// A list, read as its elements joined by commas (`[3, 15, 15]` is `3,15,15`).
    case array([OptionValue])

    /// The value as the command line would spell it: `200`, `0.5`, `true`, `3,15,15`.
    public var text: String {
        switch self {
        case .number(let value):
            if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
            return String(value)
        case .bool(let value): return String(value)
        case .string(let value): return value
        case .array(let values): return values.map(\.text).joined(separator: ",")
        }
    }
}

extension OptionValue: Decodable {
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Bool first: a JSON `true` is never read as 1, nor 1 as `true`.
        if let value = try? container.decode(Bool.self) { self = .bool(value); return }
        if let value = try? container.decode(Double.self) { self = .number(value); return }
        if let value = try? container.decode(String.self) { self = .string(value); return }
        if let value = try? container.decode([OptionValue].self) { self = .array(value); return }
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a number, boolean, string or array")
    }
}

/// Settings of a library call by the command line's long option names without dashes:
/// `["steps": .number(200), "noise-tunnel": .string("smoothgrad-sq")]`.
///
/// Every consumer reads the keys it knows and refuses any other key, naming it, so a
/// misspelt option is an error rather than silently ignored. Values are checked with the
/// command line's own rules and messages (`--steps must be at least 2 for gausslegendre`).
public struct Options: Sendable, Equatable {
    /// The options, by name.
    public var values: [String: OptionValue]

    /// No options: every setting at its default.
    public init() { values = [:] }

    /// Options with these values, by name.
    public init(_ values: [String: OptionValue]) { self.values = values }

    /// Options from a JSON object such as `{"steps": 200, "noise-tunnel": "smoothgrad-sq"}`;
    /// nil or blank text is no options.
    public init(json: String?) throws(ElucidateError) {
        guard let json, !json.allSatisfy(\.isWhitespace) else { self.init(); return }
        do {
            self.init(try JSONDecoder().decode([String: OptionValue].self, from: Data(json.utf8)))
        } catch {
            throw ElucidateError(.invalidArgument,
                                 "options must be a JSON object of option names and numbers, booleans, strings or arrays")
        }
    }

    /// The value of option `name`, or nil when not given; setting nil removes it.
    public subscript(name: String) -> OptionValue? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// These options with `other`'s added (`other` wins on a shared name).
    public func merging(_ other: Options) -> Options {
        Options(values.merging(other.values) { $1 })
    }
}

/// Reads typed options once each and remembers which were read, so that what is left can
/// be refused (`finish`). Messages name options as the command line does (`--steps`).
struct OptionReader {
    let options: Options
    private(set) var read: Set<String> = []

    init(_ options: Options) { self.options = options }

    private mutating func value(_ name: String) -> OptionValue? {
        read.insert(name)
        return options[name]
    }

    /// Whether `name` was given.
    func has(_ name: String) -> Bool { options[name] != nil }

    /// The option as command-line text; an array is a comma-separated list (`[3, 15, 15]` →
    /// `3,15,15`), as `--window` and `--panels` take.
    mutating func string(_ name: String) throws(ElucidateError) -> String? {
        value(name)?.text
    }

    mutating func string(_ name: String, default fallback: String) throws(ElucidateError) -> String {
        try string(name) ?? fallback
    }

    mutating func int(_ name: String) throws(ElucidateError) -> Int? {
        guard let value = value(name) else { return nil }
        switch value {
        case .number(let number) where number.rounded() == number && abs(number) < 9e18:
            return Int(number)
        case .string(let text):
            if let number = Int(text.trimmingCharacters(in: .whitespaces)) { return number }
        default: break
        }
        throw Self.invalid(name, value, "an integer")
    }

    mutating func int(_ name: String, default fallback: Int) throws(ElucidateError) -> Int {
        try int(name) ?? fallback
    }

    mutating func double(_ name: String) throws(ElucidateError) -> Double? {
        guard let value = value(name) else { return nil }
        switch value {
        case .number(let number): return number
        case .string(let text):
            if let number = Double(text.trimmingCharacters(in: .whitespaces)) { return number }
        default: break
        }
        throw Self.invalid(name, value, "a number")
    }

    mutating func double(_ name: String, default fallback: Double) throws(ElucidateError) -> Double {
        try double(name) ?? fallback
    }

    mutating func float(_ name: String, default fallback: Float) throws(ElucidateError) -> Float {
        try double(name).map { Float($0) } ?? fallback
    }

    mutating func bool(_ name: String, default fallback: Bool = false) throws(ElucidateError) -> Bool {
        guard let value = value(name) else { return fallback }
        switch value {
        case .bool(let flag): return flag
        case .string("true"): return true
        case .string("false"): return false
        default: throw Self.invalid(name, value, "true or false")
        }
    }

    /// A value of `Choice` by its raw value, e.g. `--quadrature riemann-left`.
    mutating func choice<Choice: RawRepresentable & CaseIterable>(
        _ name: String, _ type: Choice.Type
    ) throws(ElucidateError) -> Choice? where Choice.RawValue == String {
        guard let text = try string(name) else { return nil }
        guard let choice = Choice(rawValue: text) else {
            let known = Choice.allCases.map(\.rawValue).joined(separator: ", ")
            throw ElucidateError(.invalidArgument, "--\(name) must be one of \(known), got '\(text)'")
        }
        return choice
    }

    /// Refuses every option not read, naming the first (sorted) and what `context` knows.
    func finish(context: String) throws(ElucidateError) {
        let unknown = options.values.keys.filter { !read.contains($0) }.sorted()
        guard let first = unknown.first else { return }
        throw ElucidateError(.invalidArgument,
                             "unknown option '\(first)' for \(context) (known: \(read.sorted().joined(separator: ", ")))")
    }

    private static func invalid(_ name: String, _ value: OptionValue, _ expected: String) -> ElucidateError {
        ElucidateError(.invalidArgument, "--\(name) must be \(expected), got '\(value.text)'")
    }
}
