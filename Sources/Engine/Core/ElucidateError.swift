import Foundation

/// The error every user-facing Engine API throws: bad files, bad input, bad options.
/// Programming errors are `precondition`s instead.
///
/// `description` is one line meant for stderr, naming the file (when there is one) and
/// the problem, e.g. `model.safetensors: tensor 'fc.weight' ends past the end of the file`.
public struct ElucidateError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, in categories a caller can act on (the C API's `ELU_ERROR_*` codes
    /// follow them, in this order from 1).
    public enum Kind: String, Sendable {
        /// A file (model, image, labels, baseline) does not exist.
        case fileNotFound
        /// A file exists but cannot be read, or an output cannot be written.
        case unreadable
        /// A file's contents are malformed (truncated, inconsistent, not the format claimed).
        case invalidFormat
        /// Well-formed, but not something Elucidate handles (a layout, a dtype, a codec feature).
        case unsupported
        /// A bad argument, option, shape or value given by the caller.
        case invalidArgument
        /// The weights match no known ResNet (missing or unexpected keys, wrong shapes).
        case unknownArchitecture
        /// The image or tensor is too small for the network (or empty).
        case inputTooSmall
        /// Something that should not fail did: OpenBLAS not loadable, memory, encoding.
        case internalFailure
    }

    /// The category of the problem.
    public let kind: Kind
    /// The file the problem is in, when there is one.
    public let path: String?
    /// What went wrong, without the path: one line, no trailing period.
    public let message: String

    /// An error of `kind`; `path`, when given, prefixes `description`.
    public init(_ kind: Kind, _ message: String, path: String? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
    }

    /// The same error, attributed to `path` (keeps an existing path).
    public func at(_ path: String) -> ElucidateError {
        self.path == nil ? ElucidateError(kind, message, path: path) : self
    }

    public var description: String {
        if let path { return "\(path): \(message)" }
        return message
    }
}
