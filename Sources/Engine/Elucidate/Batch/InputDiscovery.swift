import Foundation

/// Finds the inputs of a batch run: image files given by name, folders walked recursively
/// (images recognised by their first bytes — PNG or JPEG — not by their extension; hidden
/// files and folders skipped; a folder reached again through a symbolic link is not walked
/// twice), and a manifest's entries.
///
/// The result is sorted by `BatchInput.key` (the relative path without its extension), so
/// it is the same whatever order a folder lists its files in; two inputs with one key (which
/// would write the same output files) are refused.
public enum InputDiscovery {
    /// The inputs named by `paths` (files and folders) and the manifest at `manifest`, sorted.
    /// A file given by name is an input whatever it holds (a broken one fails when it is read);
    /// a folder contributes only the files that start like a PNG or JPEG, and never those
    /// under `excluding` (the output folder, whose pictures are PNGs).
    public static func inputs(paths: [String], manifest: String? = nil,
                              excluding excluded: String? = nil) throws(ElucidateError) -> [BatchInput] {
        try sortedRefusingClashes(found(paths: paths, manifest: manifest, excluding: excluded))
    }

    /// The inputs `inputs(paths:manifest:excluding:)` finds, unsorted and unchecked for clashes,
    /// in the order given: each path in turn (a folder's images in name order, level by level),
    /// then the manifest's entries in file order — for runs that write no per-input files and
    /// keep the user's order (`elucidate evaluate`).
    public static func found(paths: [String], manifest: String? = nil,
                             excluding excluded: String? = nil) throws(ElucidateError) -> [BatchInput] {
        var found: [BatchInput] = []
        for path in paths {
            if case .found(.folder, _) = FileKind.of(path) {
                found += walk(folder: path, excluding: excluded)
            } else {
                found.append(BatchInput(path: path, relativePath: (path as NSString).lastPathComponent))
            }
        }
        if let manifest { found += try Manifest.read(manifest) }
        return found
    }

    /// `inputs` sorted by key; an error names the first two inputs that share a key.
    public static func sortedRefusingClashes(_ inputs: [BatchInput]) throws(ElucidateError) -> [BatchInput] {
        let sorted = inputs.sorted { ($0.key, $0.path) < ($1.key, $1.path) }
        for (earlier, later) in zip(sorted, sorted.dropFirst()) where earlier.key == later.key {
            throw ElucidateError(.invalidArgument,
                                 "\(earlier.path) and \(later.path) would both write the outputs named \(earlier.key).*")
        }
        return sorted
    }

    /// The images under `folder`, relative paths from it, passing over the folder `excluded`
    /// (unless it is `folder` itself: outputs written beside the inputs); never fails (unreadable folders and files are passed over).
    static func walk(folder: String, excluding excluded: String? = nil) -> [BatchInput] {
        var found: [BatchInput] = []
        var visited: Set<[UInt64]> = []
        var info = stat(), root = stat()
        if let excluded, stat(excluded, &info) == 0, stat(folder, &root) == 0,
           (info.st_dev, info.st_ino) != (root.st_dev, root.st_ino) {
            visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)])  // as if walked already
        }
        func visit(_ path: String, relative: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return }
            guard visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else { return }  // a link loop
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
            for name in names.sorted() where !name.hasPrefix(".") {
                let child = (path as NSString).appendingPathComponent(name)
                let childRelative = relative.isEmpty ? name : "\(relative)/\(name)"
                switch FileKind.of(child) {
                case .found(.folder, _): visit(child, relative: childRelative)
                case .found(.regularFile, _) where isImage(atPath: child):
                    found.append(BatchInput(path: child, relativePath: childRelative))
                default: break
                }
            }
        }
        visit(folder, relative: "")
        return found
    }

    /// Whether the file at `path` starts like a PNG or a JPEG.
    public static func isImage(atPath path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 8)) ?? Data()
        return ImageDecoder.sniff(head) != nil
    }
}
