import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain|predict --out-dir` end to end: a folder with a broken file, shards
/// (explicit, Slurm's and Kubernetes' variables) merged, an interrupted run resumed.
final class BatchCommandTests: TemporaryFolderTestCase {
    /// Scheduler variables a test runner might have set: every run here says what it wants.
    private let schedulerVariables = ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                                      "SLURM_ARRAY_TASK_MAX", "JOB_COMPLETION_INDEX", "ELUCIDATE_SHARD_COUNT"]

    /// `images/` with the bundled images (some in a subfolder) and, with `broken`, a file that
    /// starts like a PNG but is cut short.
    private func imageFolder(broken: Bool = true) throws -> String {
        let images = folder.appendingPathComponent("images")
        let bundled = packageRootURL.appendingPathComponent("Resources/images")
        try FileManager.default.createDirectory(at: images.appendingPathComponent("more"), withIntermediateDirectories: true)
        for (index, name) in try FileManager.default.contentsOfDirectory(atPath: bundled.path).sorted().enumerated() {
            let destination = index % 2 == 0 ? images.appendingPathComponent(name) : images.appendingPathComponent("more/\(name)")
            try FileManager.default.copyItem(at: bundled.appendingPathComponent(name), to: destination)
        }
        if broken {
            let png = try Data(contentsOf: bundled.appendingPathComponent("bag.png"))
            try png.prefix(40).write(to: images.appendingPathComponent("broken.png"))
        }
        return images.path
    }

    private func elucidate(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try runElucidate(arguments, environment: environment, unsetting: schedulerVariables.filter { environment[$0] == nil })
    }

    /// The `.npy` and `.png` files under `out`, by relative path.
    private func outputs(_ out: String) throws -> [String: Data] {
        var found: [String: Data] = [:]
        for case let relative as String in FileManager.default.enumerator(atPath: path(out))!
        where relative.hasSuffix(".npy") || relative.hasSuffix(".png") {
            found[relative] = try Data(contentsOf: folder.appendingPathComponent("\(out)/\(relative)"))
        }
        return found
    }

    /// The index's records with the time left out (it differs from run to run), by input.
    private func records(_ index: String) throws -> [String: IndexRecord] {
        var byInput: [String: IndexRecord] = [:]
        for var record in try BatchIndex.read(URL(fileURLWithPath: path(index))) {
            XCTAssertNil(byInput[record.input], "\(record.input) twice in \(index)")
            record.seconds = nil
            byInput[record.input] = record
        }
        return byInput
    }

    private func assertNoTemporaryFiles(_ out: String, file: StaticString = #filePath, line: UInt = #line) {
        let leftovers = (FileManager.default.enumerator(atPath: path(out))?.allObjects as? [String] ?? [])
            .filter { ($0 as NSString).lastPathComponent.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "temporary files left in \(out)", file: file, line: line)
    }

    private let summaryPattern = #"^done \d+, failed \d+, skipped \d+ in [0-9.]+ s \([0-9.]+ images/s\)$"#

    private func summary(_ stderr: String) -> String {
        String(stderr.split(separator: "\n").last ?? "")
    }

    func testAFolderWithABrokenFileGetsACompleteIndexAndExitOne() throws {
        let images = try imageFolder()
        let result = try elucidate(["explain", "saliency", "--model", "fashion-mnist-resnet", images, "--out-dir", path("out"),
                                    "--pictures", "--images-per-batch", "4"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(summary(result.stderr).hasPrefix("done 6, failed 1, skipped 0 in "), result.stderr)
        XCTAssertNotNil(summary(result.stderr).range(of: summaryPattern, options: .regularExpression), result.stderr)
        let records = try records("out/index.jsonl")
        XCTAssertEqual(records.count, 7)
        let broken = try XCTUnwrap(records[images + "/broken.png"])
        XCTAssertNil(broken.output)
        XCTAssertTrue(broken.error?.contains("broken.png") == true, "\(broken)")
        for record in records.values where record.error == nil {
            let output = try XCTUnwrap(record.output)
            XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("out/\(output)"))).shape, [1, 3, 28, 28])
            XCTAssertNotNil(record.predicted)
            XCTAssertNotNil(record.targetLabel)
            XCTAssertTrue(FileManager.default.fileExists(atPath: path("out/\(try XCTUnwrap(record.picture))")))
        }
        XCTAssertNotNil(records[images + "/more/bag.png"]?.output == "more/bag.npy" ? 1 : nil, "\(records.keys)")
        assertNoTemporaryFiles("out")
    }

    /// Three shards — given explicitly, from Slurm's array variables, from Kubernetes' index —
    /// merged, are the single run: the same files byte for byte and the same records.
    func testThreeShardsMergedEqualTheSingleRun() throws {
        let images = try imageFolder()
        let method = ["explain", "gradient-shap", "--samples", "3", "--seed", "4", "--model", "fashion-mnist-resnet", images]
        let single = try elucidate(method + ["--out-dir", path("single"), "--images-per-batch", "3"])
        XCTAssertEqual(single.status, 1, single.stderr)
        let expected = try outputs("single")
        XCTAssertEqual(expected.count, 6)
        let schedulers: [(name: String, arguments: (Int) -> [String], environment: (Int) -> [String: String], note: String)] = [
            ("explicit", { ["--shard", "\($0)/3"] }, { _ in [:] }, "(from --shard)"),
            ("slurm", { _ in [] }, { ["SLURM_ARRAY_TASK_ID": "\($0 + 1)", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3"] },
             "(from SLURM_ARRAY_TASK_ID)"),
            ("slurm-count", { _ in [] }, { ["SLURM_ARRAY_TASK_ID": "\($0)", "SLURM_ARRAY_TASK_COUNT": "3"] }, "(from SLURM_ARRAY_TASK_ID)"),
            ("kubernetes", { _ in ["--shard-count", "3"] }, { ["JOB_COMPLETION_INDEX": "\($0)"] }, "(from JOB_COMPLETION_INDEX)"),
            ("kubernetes-env", { _ in [] }, { ["JOB_COMPLETION_INDEX": "\($0)", "ELUCIDATE_SHARD_COUNT": "3"] },
             "(from JOB_COMPLETION_INDEX)"),
        ]
        for scheduler in schedulers {
            let out = path(scheduler.name)
            for index in 0..<3 {
                let result = try elucidate(method + ["--out-dir", out, "--images-per-batch", "2"] + scheduler.arguments(index),
                                           environment: scheduler.environment(index))
                XCTAssertTrue([0, 1].contains(result.status), "\(scheduler.name) \(index): \(result.stderr)")
                XCTAssertTrue(result.stderr.hasPrefix("shard \(index)/3 \(scheduler.note)\n"), "\(scheduler.name): \(result.stderr)")
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/index-\(index)-of-3.jsonl"), scheduler.name)
            }
            let merge = try elucidate(["index", "merge", out])
            XCTAssertEqual(merge.status, 0, "\(scheduler.name): \(merge.stderr)")
            XCTAssertTrue(merge.stdout.contains("merged 7 inputs from 3 of 3 shards"), merge.stdout)
            XCTAssertTrue(merge.stdout.contains("failed: \(images)/broken.png"), merge.stdout)
            XCTAssertEqual(try outputs(scheduler.name), expected, scheduler.name)
            XCTAssertEqual(try records("\(scheduler.name)/index.jsonl"), try records("single/index.jsonl"), scheduler.name)
        }
    }

    func testMergeReportsAMissingShard() throws {
        let images = try imageFolder(broken: false)
        let result = try elucidate(["predict", "--model", "fashion-mnist-resnet", images, "--out-dir", path("out"), "--shard", "1/3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let merge = try elucidate(["index", "merge", path("out"), "--json"])
        XCTAssertEqual(merge.status, 1)
        let report = try JSONDecoder().decode(IndexMergeReport.self, from: Data(merge.stdout.utf8))
        XCTAssertEqual(report.missingShards, [0, 2])
        XCTAssertEqual(report.records, 2)
        XCTAssertTrue(merge.stderr.contains("2 shards missing"), merge.stderr)
    }

    /// SIGTERM after the first record, then `--resume`: the files of an uninterrupted run, no
    /// temporary files, a complete index.
    func testARunStoppedBySIGTERMAndResumedEqualsAnUninterruptedRun() throws {
        let images = try imageFolder(broken: false)
        let method = ["explain", "occlusion", "--window", "3,3,3", "--stride", "3,1,1", "--model", "fashion-mnist-resnet", images]
        let whole = try elucidate(method + ["--out-dir", path("whole")])
        XCTAssertEqual(whole.status, 0, whole.stderr)

        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("elucidate")
        process.arguments = method + ["--out-dir", path("stopped")]
        var environment = ProcessInfo.processInfo.environment
        for name in schedulerVariables { environment[name] = nil }
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let index = path("stopped/index.jsonl")
        let deadline = Date().addingTimeInterval(300)
        while process.isRunning && Date() < deadline {
            if let text = try? String(contentsOfFile: index, encoding: .utf8), text.contains("\n") { break }
            usleep(5_000)
        }
        kill(process.processIdentifier, SIGTERM)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, stderr)
        XCTAssertEqual(process.terminationStatus, 143, stderr)
        XCTAssertNotNil(summary(stderr).range(of: summaryPattern, options: .regularExpression), stderr)
        let partial = try records("stopped/index.jsonl")
        XCTAssertGreaterThanOrEqual(partial.count, 1)
        XCTAssertLessThan(partial.count, 6, "the run ended before the signal: use a slower method")
        assertNoTemporaryFiles("stopped")
        XCTAssertEqual(try outputs("stopped").count, partial.count, "only the recorded inputs have files")

        let resumed = try elucidate(method + ["--out-dir", path("stopped"), "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(summary(resumed.stderr).hasPrefix("done \(6 - partial.count), failed 0, skipped \(partial.count) in "),
                      resumed.stderr)
        XCTAssertEqual(try outputs("stopped"), try outputs("whole"))
        XCTAssertEqual(try records("stopped/index.jsonl"), try records("whole/index.jsonl"))
        assertNoTemporaryFiles("stopped")
    }

    func testPredictWritesTheIndexFromAManifestWithTargets() throws {
        _ = try imageFolder()
        try "# label or index per line\nimages/more/bag.png\tBag\nimages/dress.png\t1\n\nimages/missing.png\n"
            .write(toFile: path("list.txt"), atomically: true, encoding: .utf8)
        let result = try elucidate(["predict", "--model", "fashion-mnist-resnet", "--manifest", path("list.txt"),
                                    "--out-dir", path("out")])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(summary(result.stderr).hasPrefix("done 2, failed 1, skipped 0"), result.stderr)
        let records = try records("out/index.jsonl")
        XCTAssertEqual(records[path("images/more/bag.png")]?.targetLabel, "Bag")
        XCTAssertEqual(records[path("images/dress.png")]?.target, 1)
        XCTAssertNotNil(records[path("images/missing.png")]?.error)
        XCTAssertTrue(records.values.allSatisfy { $0.output == nil })
        XCTAssertEqual(try outputs("out"), [:])
    }

    func testSingleRunOptionsAreRefusedWithOutDir() throws {
        let images = try imageFolder(broken: false)
        for extra in [["--attributions", path("a.npy")], ["--visualize", path("a.png")], ["--json"]] {
            let result = try elucidate(["explain", "saliency", images, "--out-dir", path("out")] + extra)
            XCTAssertEqual(result.status, 64, "\(extra): \(result.stderr)")
        }
        for extra in [["--resume"], ["--shard", "0/2"], ["--pictures"]] {
            let result = try elucidate(["explain", "saliency", images + "/bag.png", "--attributions", path("a.npy")] + extra)
            XCTAssertEqual(result.status, 64, "\(extra): \(result.stderr)")
        }
        let missingCount = try elucidate(["predict", images, "--out-dir", path("out")], environment: ["JOB_COMPLETION_INDEX": "0"])
        XCTAssertEqual(missingCount.status, 1)
        XCTAssertTrue(missingCount.stderr.contains("--shard-count"), missingCount.stderr)
    }
}
