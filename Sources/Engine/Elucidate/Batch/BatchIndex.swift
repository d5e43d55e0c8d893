import Foundation

/// A batch run's index file: JSON lines, one `IndexRecord` per input, appended and handed
/// to the system one whole line at a time, after the input's outputs were written — so the
/// index never names a missing file, and a run killed at any moment leaves complete lines
/// (and at worst one cut-short last line, which `read` passes over).
public final class BatchIndex {
    /// The index file.
    public let url: URL
    private let handle: FileHandle

    /// Opens the index at `url` for appending, first replacing it (atomically) with `keeping`
    /// — the records a resumed run keeps — or with nothing.
    public init(url: URL, keeping records: [IndexRecord] = []) throws(ElucidateError) {
        self.url = url
        var text = ""
        for record in records { text += try record.jsonLine() + "\n" }
        try AtomicFile.write(Data(text.utf8), to: url)
        guard let handle = FileHandle(forWritingAtPath: url.path) else {
            throw ElucidateError(.unreadable, "cannot open the index for writing", path: url.path)
        }
        do { try handle.seekToEnd() } catch {
            throw ElucidateError(.unreadable, "cannot open the index for writing: \(error.localizedDescription)", path: url.path)
        }
        self.handle = handle
    }

    deinit { try? handle.close() }

    /// Appends `record` as one line (one `write`).
    public func append(_ record: IndexRecord) throws(ElucidateError) {
        let line = try record.jsonLine() + "\n"
        do { try handle.write(contentsOf: Data(line.utf8)) } catch {
            throw ElucidateError(.unreadable, "cannot write the index: \(error.localizedDescription)", path: url.path)
        }
    }

    /// The records of the index file at `url`, in file order; lines that are not records (cut
    /// short) are left out. A missing file has none.
    public static func read(_ url: URL) throws(ElucidateError) -> [IndexRecord] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let data = try readFileBytes(url, expected: "an index (JSON lines)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { IndexRecord(jsonLine: $0) }
    }

    /// The index file's name: `index.jsonl`, or `index-I-of-N.jsonl` for a shard.
    public static func fileName(shard: Shard?) -> String { shard?.indexFileName ?? "index.jsonl" }
}
