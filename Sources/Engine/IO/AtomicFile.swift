import Foundation

/// Writes files so that readers never see a partial result: the bytes go to a temporary
/// file in the destination's folder, which is then renamed over the destination.
public enum AtomicFile {
    /// Writes `data` to `url` atomically. Refuses to write over any path in `protectedInputs`
    /// (the command's own inputs), comparing resolved paths.
    public static func write(_ data: Data, to url: URL, protectedInputs: [URL] = []) throws(ElucidateError) {
        let destination = url.standardizedFileURL.resolvingSymlinksInPath()
        for input in protectedInputs where input.standardizedFileURL.resolvingSymlinksInPath() == destination {
            throw ElucidateError(.invalidArgument, "refusing to overwrite an input file", path: url.path)
        }
        let folder = destination.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ElucidateError(.fileNotFound, "folder \(folder.path) does not exist", path: url.path)
        }
        let temporary = folder.appendingPathComponent(".\(destination.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            try data.write(to: temporary, options: [])
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ElucidateError(.unreadable, "cannot write: \(error.localizedDescription)", path: url.path)
        }
        if rename(temporary.path, destination.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw ElucidateError(.unreadable, "cannot write: \(reason)", path: url.path)
        }
    }
}

/// Reads a whole file, turning Foundation's errors into one clear `ElucidateError`.
public func readFileBytes(_ url: URL) throws(ElucidateError) -> Data {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
        throw ElucidateError(.fileNotFound, "no such file", path: url.path)
    }
    guard !isDirectory.boolValue else {
        throw ElucidateError(.unreadable, "is a folder, not a file", path: url.path)
    }
    do {
        return try Data(contentsOf: url, options: [.mappedIfSafe])
    } catch {
        throw ElucidateError(.unreadable, "cannot read: \(error.localizedDescription)", path: url.path)
    }
}
