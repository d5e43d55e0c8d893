import Foundation

/// One input of a batch run: the image to read, where its outputs go, and optionally the
/// class to explain.
public struct BatchInput: Sendable, Equatable {
    /// The image file as given (a folder walk joins the folder as given with the names found).
    public var path: String
    /// The path relative to its root (the folder given; for a single file or a manifest entry
    /// its parent folder or the manifest's folder), with `/` between components: outputs go to
    /// `OUT/<relativePath with the extension replaced>`.
    public var relativePath: String
    /// The class to explain (a manifest's second column), or nil for the run's `target`.
    public var target: BatchTarget?

    /// An input read from `path`, its outputs named after `relativePath`.
    public init(path: String, relativePath: String, target: BatchTarget? = nil) {
        self.path = path
        self.relativePath = relativePath
        self.target = target
    }

    /// `relativePath` with its extension (if any) replaced by `newExtension` (`npy`, `png`):
    /// the name of an output under the output folder, and the key inputs are sorted by.
    public func outputPath(extension newExtension: String) -> String {
        Self.replacingExtension(of: relativePath, with: newExtension)
    }

    /// The sort and shard key: the relative path without its extension (two inputs with the
    /// same key would write the same files).
    public var key: String { Self.replacingExtension(of: relativePath, with: nil) }

    private static func replacingExtension(of path: String, with newExtension: String?) -> String {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        var stem = Substring(path)
        // A leading dot names a hidden file, not an extension ("dir/.x" keeps its name).
        if let dot = path[slash...].lastIndex(of: "."), dot > slash { stem = path[..<dot] }
        return newExtension.map { "\(stem).\($0)" } ?? String(stem)
    }
}

/// The class a manifest line asks to explain: an index, or a label the model must have.
public enum BatchTarget: Sendable, Equatable {
    /// A class index (0-based).
    case index(Int)
    /// A class label, looked up in the model's labels when the input is run.
    case label(String)

    /// `text` as an index when it is a non-negative integer, else as a label.
    public init(parsing text: String) {
        if let index = Int(text), index >= 0 { self = .index(index) } else { self = .label(text) }
    }

    /// The class index for `classifier`, or an error naming the label it lacks.
    func index(in classifier: Classifier) throws(ElucidateError) -> Int {
        switch self {
        case .index(let index):
            guard index < classifier.classes else {
                throw ElucidateError(.invalidArgument, "target \(index) is out of range: the model has \(classifier.classes) classes")
            }
            return index
        case .label(let label):
            guard let index = classifier.labels?.firstIndex(of: label) else {
                throw ElucidateError(.invalidArgument, "target '\(label)' is not one of the model's labels")
            }
            return index
        }
    }
}
