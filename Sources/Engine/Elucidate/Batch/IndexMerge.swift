import Foundation

/// What `IndexMerge.merge` found and wrote.
public struct IndexMergeReport: Codable, Sendable, Equatable {
    /// The merged index written (`OUT/index.jsonl`).
    public var index: String
    /// N of the `index-I-of-N.jsonl` files.
    public var shardCount: Int
    /// The shards whose index was found, ascending.
    public var shardsFound: [Int]
    /// The shards whose index is missing, ascending.
    public var missingShards: [Int]
    /// Records in the merged index (one per input).
    public var records: Int
    /// Inputs recorded more than once (the first record is kept), sorted.
    public var duplicatedInputs: [String]
    /// Inputs whose record is an error, sorted.
    public var failedInputs: [String]

    /// Whether every shard was found and no input was recorded twice.
    public var isComplete: Bool { missingShards.isEmpty && duplicatedInputs.isEmpty }
}

/// Joins the shard indexes of a sharded run into one index.
public enum IndexMerge {
    /// Merges `folder/index-I-of-N.jsonl` (every I found; all must share one N) into
    /// `folder/index.jsonl`, written atomically, records sorted by input, each input once
    /// (the lowest shard's record when one is duplicated). Missing shards and duplicated
    /// inputs are reported, not refused: the merged index holds what exists.
    public static func merge(folder: URL) throws(ElucidateError) -> IndexMergeReport {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path) } catch {
            throw ElucidateError(.fileNotFound, "cannot list the output folder", path: folder.path)
        }
        var shards: [(index: Int, count: Int, name: String)] = []
        for name in names {
            if let shard = shardOf(fileName: name) { shards.append((shard.index, shard.count, name)) }
        }
        guard let count = shards.first?.count else {
            throw ElucidateError(.fileNotFound, "no shard index (index-I-of-N.jsonl) in the folder", path: folder.path)
        }
        if let other = shards.first(where: { $0.count != count }) {
            throw ElucidateError(.invalidArgument,
                                 "the shard indexes disagree on the shard count (\(count) and \(other.count)): \(other.name)",
                                 path: folder.path)
        }
        shards.sort { $0.index < $1.index }
        var records: [IndexRecord] = []
        for shard in shards { records += try BatchIndex.read(folder.appendingPathComponent(shard.name)) }
        // Stable: for a duplicated input, the lowest shard's record comes first and is kept.
        let sorted = records.enumerated().sorted { ($0.element.input, $0.offset) < ($1.element.input, $1.offset) }.map(\.element)
        var merged: [IndexRecord] = []
        var duplicated: [String] = []
        for record in sorted {
            if merged.last?.input == record.input {
                if duplicated.last != record.input { duplicated.append(record.input) }
            } else {
                merged.append(record)
            }
        }
        let url = folder.appendingPathComponent(BatchIndex.fileName(shard: nil))
        var text = ""
        for record in merged { text += try record.jsonLine() + "\n" }
        try AtomicFile.write(Data(text.utf8), to: url)
        let found = shards.map(\.index)
        return IndexMergeReport(index: url.path, shardCount: count, shardsFound: found,
                                missingShards: (0..<count).filter { !found.contains($0) }, records: merged.count,
                                duplicatedInputs: duplicated, failedInputs: merged.filter { $0.error != nil }.map(\.input))
    }

    /// The shard an index file's name (`index-I-of-N.jsonl`) belongs to, or nil for any other name.
    public static func shardOf(fileName name: String) -> Shard? {
        guard name.hasPrefix("index-"), name.hasSuffix(".jsonl") else { return nil }
        let middle = name.dropFirst("index-".count).dropLast(".jsonl".count)
        let parts = middle.components(separatedBy: "-of-")
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let index = Int(parts[0]), let count = Int(parts[1]) else { return nil }
        return try? Shard(index: index, count: count)
    }
}
