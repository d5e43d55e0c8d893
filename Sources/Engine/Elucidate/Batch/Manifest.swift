import Foundation

/// A list of inputs in a text file (`--manifest LIST`): UTF-8, one image path per line,
/// optionally followed by a TAB and the class to explain (an index or a label). Blank lines
/// and lines starting with `#` are ignored; a relative path is resolved against the
/// manifest's folder.
///
/// Each entry's outputs are named after its path relative to the manifest's folder; an
/// entry outside that folder (`../x.png`, `/data/x.png`) is named after its absolute path
/// without the leading `/` (`data/x`), so that every output stays inside the output folder.
public enum Manifest {
    /// The entries of the manifest file at `path`, in file order.
    public static func read(_ path: String) throws(ElucidateError) -> [BatchInput] {
        let data = try readFileBytes(URL(fileURLWithPath: path), expected: "a manifest (one image path per line)")
        guard let text = String(data: data, encoding: .utf8) else {
            throw ElucidateError(.invalidFormat, "a manifest must be UTF-8 text", path: path)
        }
        return try parse(text, folder: (path as NSString).deletingLastPathComponent, source: path)
    }

    /// The entries of manifest `text` whose relative paths are relative to `folder` (`""` for
    /// the current folder); errors name `source` and the line.
    public static func parse(_ text: String, folder: String, source: String = "the manifest") throws(ElucidateError) -> [BatchInput] {
        var entries: [BatchInput] = []
        // "\r\n" is one Character in Swift: a line ends at either.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated() {
            if line.allSatisfy(\.isWhitespace) || line.hasPrefix("#") { continue }
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            let given = String(parts[0])
            guard !given.isEmpty else {
                throw ElucidateError(.invalidFormat, "line \(number + 1) has a target but no path", path: source)
            }
            let targetText = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
            let path = given.hasPrefix("/") || folder.isEmpty ? given : (folder as NSString).appendingPathComponent(given)
            entries.append(BatchInput(path: path, relativePath: relativeName(given, folder: folder),
                                      target: targetText.isEmpty ? nil : BatchTarget(parsing: targetText)))
        }
        return entries
    }

    /// `given` relative to `folder` with `.` and `..` resolved; outside it, the absolute path
    /// without its leading `/`.
    static func relativeName(_ given: String, folder: String) -> String {
        if !given.hasPrefix("/"), let inside = lexicallyNormalized(given.split(separator: "/").map(String.init)) {
            return inside
        }
        let base = folder.isEmpty ? FileManager.default.currentDirectoryPath : folder
        let absolute = given.hasPrefix("/") ? given : (base as NSString).appendingPathComponent(given)
        let components = URL(fileURLWithPath: absolute).standardizedFileURL.path.split(separator: "/").map(String.init)
        return components.joined(separator: "/")
    }

    /// The components with `.` and empty ones dropped and `..` applied, or nil when a `..`
    /// climbs above the start.
    private static func lexicallyNormalized(_ components: [String]) -> String? {
        var kept: [String] = []
        for component in components where component != "." && !component.isEmpty {
            if component == ".." {
                guard !kept.isEmpty else { return nil }
                kept.removeLast()
            } else {
                kept.append(component)
            }
        }
        return kept.isEmpty ? nil : kept.joined(separator: "/")
    }
}
