import ArgumentParser
import Elucidate
import Foundation

/// The options of a batch run (`--out-dir`): where the outputs go, which share of the inputs
/// this process takes, and how many images go through the network together.
struct BatchOptions: ParsableArguments {
    @Option(name: .customLong("out-dir"), help: ArgumentHelp(
        "Run on every input into this folder: one output per input (named after its path relative to the folder or manifest given) and an index, index.jsonl.",
        valueName: "folder"))
    var outDir: String?

    @Flag(name: .long, help: "With --out-dir: skip inputs whose index record and files exist (an interrupted run, run again).")
    var resume = false

    @Option(name: .long, help: ArgumentHelp(
        "With --out-dir: take shard I of N (0-based) of the sorted inputs; the index is index-I-of-N.jsonl. Default: from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.",
        valueName: "I/N"))
    var shard: String?

    @Option(name: .customLong("shard-count"), help: "With --out-dir and JOB_COMPLETION_INDEX: the number of shards (else ELUCIDATE_SHARD_COUNT).")
    var shardCount: Int?

    @Option(name: .customLong("images-per-batch"), help: "With --out-dir: images of one size run through the network together (forward-only methods and predict; the others run one image at a time so that results never depend on the batch).")
    var batchSize: Int = 1

    /// The batch-only options given without `--out-dir`, by name (for the refusal).
    var givenWithoutOutDir: [String] {
        guard outDir == nil else { return [] }
        return [resume ? "--resume" : nil, shard.map { _ in "--shard" }, shardCount.map { _ in "--shard-count" },
                batchSize != 1 ? "--images-per-batch" : nil].compactMap { $0 }
    }

    func validate() throws {
        if let first = givenWithoutOutDir.first { throw ValidationError("\(first) applies only with --out-dir") }
        if batchSize < 1 { throw ValidationError("--images-per-batch must be at least 1") }
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
        if let shard {
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError(error.message) }
        }
    }

    /// The shard to take — `--shard`, else the scheduler's variables — and the line saying so
    /// (nil for all the inputs).
    func resolvedShard() throws(ElucidateError) -> (shard: Shard, note: String)? {
        if let shard { return (try Shard(parsing: shard), "shard \(shard) (from --shard)") }
        guard let (shard, source) = try Shard.fromEnvironment(ProcessInfo.processInfo.environment, shardCount: shardCount) else {
            return nil
        }
        return (shard, "shard \(shard) (from \(source))")
    }
}
