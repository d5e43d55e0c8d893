import Elucidate
import Foundation
import TestSupport
import XCTest

/// A batch run's index: records on JSON lines, merging shards, and resuming.
final class BatchIndexTests: TemporaryFolderTestCase {
    private func record(_ input: String, error: String? = nil) -> IndexRecord {
        var record = IndexRecord(input: input)
        if let error { record.error = error } else { record.output = "\(input).npy"; record.predicted = 3; record.probability = 0.5 }
        return record
    }

    func testRecordsRoundTripOnOneLine() throws {
        var full = record("dir/a \"quoted\"\nname.png")
        full.picture = "a.png"
        full.target = 1
        full.targetLabel = "Trouser"
        full.predictedLabel = "Bag"
        full.convergenceDelta = -0.25
        full.seconds = 1.5
        let line = try full.jsonLine()
        XCTAssertFalse(line.contains("\n"))
        XCTAssertEqual(IndexRecord(jsonLine: Substring(line)), full)
        XCTAssertEqual(try IndexRecord(input: "x").jsonLine(), #"{"input":"x"}"#)
    }

    func testAnIndexCutShortKeepsItsCompleteLines() throws {
        let url = folder.appendingPathComponent("index.jsonl")
        let index = try BatchIndex(url: url, keeping: [record("a")])
        try index.append(record("b", error: "b: cannot decode"))
        var text = try String(contentsOf: url, encoding: .utf8)
        text += #"{"input":"c","outp"#  // a crash in mid-line
        try text.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try BatchIndex.read(url), [record("a"), record("b", error: "b: cannot decode")])
        XCTAssertEqual(try BatchIndex.read(folder.appendingPathComponent("missing.jsonl")), [])
    }

    func testMergeSortsByInputAndReportsMissingShardsAndDuplicates() throws {
        func shard(_ index: Int, _ records: [IndexRecord]) throws {
            let name = try Shard(index: index, count: 4).indexFileName
            _ = try BatchIndex(url: folder.appendingPathComponent(name), keeping: records)
        }
        try shard(0, [record("d"), record("a")])
        try shard(1, [record("b", error: "b: broken")])
        try shard(3, [record("c"), record("a")])
        let report = try IndexMerge.merge(folder: folder)
        XCTAssertEqual(report.shardCount, 4)
        XCTAssertEqual(report.shardsFound, [0, 1, 3])
        XCTAssertEqual(report.missingShards, [2])
        XCTAssertEqual(report.duplicatedInputs, ["a"])
        XCTAssertEqual(report.failedInputs, ["b"])
        XCTAssertFalse(report.isComplete)
        XCTAssertEqual(try BatchIndex.read(folder.appendingPathComponent("index.jsonl")).map(\.input), ["a", "b", "c", "d"])
    }

    func testMergeOfCompleteShardsIsComplete() throws {
        for index in 0..<2 {
            _ = try BatchIndex(url: folder.appendingPathComponent(try Shard(index: index, count: 2).indexFileName),
                               keeping: [record("x\(index)")])
        }
        let report = try IndexMerge.merge(folder: folder)
        XCTAssertTrue(report.isComplete)
        XCTAssertEqual(report.records, 2)
        XCTAssertNil(IndexMerge.shardOf(fileName: "index-1-of-2.jsonl.tmp"))
        XCTAssertNil(IndexMerge.shardOf(fileName: "index.jsonl"))
        XCTAssertThrowsError(try IndexMerge.merge(folder: folder.appendingPathComponent("nothing")))
    }
}
