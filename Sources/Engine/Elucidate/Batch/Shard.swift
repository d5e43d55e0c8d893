/// One share of a batch run's inputs: shard `index` of `count` takes, of the inputs sorted
/// by `BatchInput.key`, those at positions k with k mod `count` == `index`. The shares are
/// disjoint, cover every input, and do not depend on the order a folder lists its files in.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// The shard's number, 0-based, below `count`.
    public let index: Int
    /// How many shards the inputs are split into (at least 1).
    public let count: Int

    /// Shard `index` (0-based) of `count`.
    public init(index: Int, count: Int) throws(ElucidateError) {
        guard count >= 1 else { throw ElucidateError(.invalidArgument, "the shard count must be at least 1, got \(count)") }
        guard index >= 0 && index < count else {
            throw ElucidateError(.invalidArgument, "shard \(index) does not exist: shards are numbered 0…\(count - 1)")
        }
        self.index = index
        self.count = count
    }

    /// `I/N` as `--shard` takes it (0-based I < N).
    public init(parsing text: String) throws(ElucidateError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            throw ElucidateError(.invalidArgument, "--shard must be I/N (shard I of N, 0-based), got '\(text)'")
        }
        try self.init(index: index, count: count)
    }

    /// `I/N`.
    public var description: String { "\(index)/\(count)" }

    /// The index file's name for this shard: `index-I-of-N.jsonl`.
    public var indexFileName: String { "index-\(index)-of-\(count).jsonl" }

    /// The inputs (sorted by key) this shard takes.
    public func select(_ sortedInputs: [BatchInput]) -> [BatchInput] {
        sortedInputs.enumerated().filter { $0.offset % count == index }.map(\.element)
    }

    /// The shard a scheduler asks for, and where it came from, or nil when no variable is set.
    ///
    /// Slurm job arrays: `SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT`, or when that is
    /// absent `SLURM_ARRAY_TASK_MIN`/`MAX` (I = ID − MIN, N = MAX − MIN + 1). Kubernetes indexed
    /// Jobs: `JOB_COMPLETION_INDEX` with the count `shardCount` (`--shard-count`), else
    /// `ELUCIDATE_SHARD_COUNT`; an error when neither gives it.
    public static func fromEnvironment(_ environment: [String: String], shardCount: Int? = nil)
        throws(ElucidateError) -> (shard: Shard, source: String)? {
        func number(_ name: String) throws(ElucidateError) -> Int? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            guard let value = Int(text) else { throw ElucidateError(.invalidArgument, "\(name) must be an integer, got '\(text)'") }
            return value
        }
        if let id = try number("SLURM_ARRAY_TASK_ID") {
            if let count = try number("SLURM_ARRAY_TASK_COUNT") {
                let minimum = try number("SLURM_ARRAY_TASK_MIN") ?? 0
                return (try Shard(index: id - minimum, count: count), "SLURM_ARRAY_TASK_ID")
            }
            guard let minimum = try number("SLURM_ARRAY_TASK_MIN"), let maximum = try number("SLURM_ARRAY_TASK_MAX") else {
                throw ElucidateError(.invalidArgument,
                                     "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/MAX")
            }
            return (try Shard(index: id - minimum, count: maximum - minimum + 1), "SLURM_ARRAY_TASK_ID")
        }
        if let index = try number("JOB_COMPLETION_INDEX") {
            let count: Int
            if let shardCount { count = shardCount } else if let given = try number("ELUCIDATE_SHARD_COUNT") { count = given } else {
                throw ElucidateError(.invalidArgument,
                                     "JOB_COMPLETION_INDEX is set: give the shard count with --shard-count N or ELUCIDATE_SHARD_COUNT")
            }
            return (try Shard(index: index, count: count), "JOB_COMPLETION_INDEX")
        }
        return nil
    }
}
