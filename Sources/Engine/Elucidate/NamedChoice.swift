/// Looking up a method or metric by its command-line name, with one message for a bad name.
extension RawRepresentable where Self: CaseIterable, RawValue == String {
    /// The case named `name`, or an error such as "unknown method 'x' (known: a, b)" with
    /// `kind` (`method`, `metric`) in it.
    static func named(_ name: String, kind: String) throws(ElucidateError) -> Self {
        guard let value = Self(rawValue: name) else {
            throw ElucidateError(.invalidArgument,
                                 "unknown \(kind) '\(name)' (known: \(allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return value
    }
}
