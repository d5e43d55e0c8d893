import ArgumentParser
import Elucidate
import Foundation

/// `elucidate index`: work on the index of a batch run (`--out-dir`).
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Work on a batch run's index (index.jsonl).",
        subcommands: [IndexMergeCommand.self])
}

/// `elucidate index merge OUT`: the shard indexes into one.
struct IndexMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge OUT/index-I-of-N.jsonl into OUT/index.jsonl; fails when shards are missing or inputs duplicated.")

    @Argument(help: "The output folder of the sharded runs.")
    var folder: String

    @Flag(name: .long, help: "Print the report as one JSON document.")
    var json = false

    func run() throws {
        let report = try Elucidate.IndexMerge.merge(folder: URL(fileURLWithPath: folder))
        if json {
            try StandardOutput.write(try JSONOutput.string(report) + "\n")
        } else {
            var text = "merged \(report.records) inputs from \(report.shardsFound.count) of \(report.shardCount) shards into "
                + TerminalText.escaped(report.index) + "\n"
            if !report.missingShards.isEmpty {
                text += "missing shards: \(report.missingShards.map(String.init).joined(separator: ", "))\n"
            }
            for input in report.duplicatedInputs { text += "duplicated: \(TerminalText.escaped(input))\n" }
            for input in report.failedInputs { text += "failed: \(TerminalText.escaped(input))\n" }
            try StandardOutput.write(text)
        }
        if !report.isComplete {
            ElucidateCommand.fail("the index is incomplete: \(report.missingShards.count) shards missing, "
                                  + "\(report.duplicatedInputs.count) inputs duplicated", code: 1)
        }
    }
}
