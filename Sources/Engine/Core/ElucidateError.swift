import Foundation

/// The error every user-facing Engine API throws: bad files, bad input, bad options.
/// Programming errors are `precondition`s instead.
///
/// `description` is one line meant for stderr, naming the file (when there is one) and
/// the problem, e.g. `model.safetensors: tensor 'fc.weight' ends past the end of the file`.
public struct ElucidateError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case fileNotFound, unreadable, invalidFormat, unsupported, invalidArgument
        case unknownArchitecture, inputTooSmall, internalFailure
    }

    public let kind: Kind
    /// The file the problem is in, when there is one.
    public let path: String?
    public let message: String

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
