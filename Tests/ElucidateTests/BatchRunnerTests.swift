import Elucidate
import Foundation
import TestSupport
import XCTest

/// The batch runner on the built-in model: files per input, error records, resuming, and
/// files that do not depend on batch, shard or resumption.
final class BatchRunnerTests: TemporaryFolderTestCase {
    private let names = ["bag.png", "dress.png", "sneaker.png", "trouser.png"]

    private func inputs() throws -> [BatchInput] {
        let images = folder.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for name in names {
            try FileManager.default.copyItem(at: packageRootURL.appendingPathComponent("Resources/images/\(name)"),
                                             to: images.appendingPathComponent(name))
        }
        try Data("not a PNG".utf8).write(to: images.appendingPathComponent("broken.png"))
        return try InputDiscovery.inputs(paths: [images.path, images.appendingPathComponent("broken.png").path])
    }

    private func runner(_ job: BatchJob, into name: String, batchSize: Int = 1, resume: Bool = false,
                        shard: Shard? = nil) throws -> BatchRunner {
        var settings = BatchRunSettings(outputFolder: folder.appendingPathComponent(name))
        settings.batchSize = batchSize
        settings.resume = resume
        settings.shard = shard
        return BatchRunner(classifier: try ModelLoader.load(BuiltinModels.defaultName), job: job, settings: settings)
    }

    private func files(_ name: String) throws -> [String: Data] {
        let root = folder.appendingPathComponent(name)
        var found: [String: Data] = [:]
        for case let relative as String in FileManager.default.enumerator(atPath: root.path)! where relative.hasSuffix(".npy") {
            found[relative] = try Data(contentsOf: root.appendingPathComponent(relative))
        }
        return found
    }

    func testEveryInputGetsAFileOrAnErrorRecord() throws {
        let inputs = try inputs()
        XCTAssertEqual(inputs.count, 5)  // the broken file is given by name
        let summary = try runner(.explain(method: "saliency", options: Options()), into: "out", batchSize: 3).run(inputs)
        XCTAssertEqual(summary.progress, BatchProgress(done: 4, failed: 1, skipped: 0, total: 5))
        let records = try BatchIndex.read(summary.index)
        XCTAssertEqual(records.count, 5)
        XCTAssertEqual(records.filter { $0.error != nil }.map(\.input), [path("images/broken.png")])
        XCTAssertEqual(try files("out").keys.sorted(), ["bag.npy", "dress.npy", "sneaker.npy", "trouser.npy"])
        let bag = try NPY.readFloat32(folder.appendingPathComponent("out/bag.npy"))
        XCTAssertEqual(bag.shape, [1, 3, 28, 28])
        XCTAssertTrue(summary.line.hasPrefix("done 4, failed 1, skipped 0 in "), summary.line)
    }

    func testResumeSkipsWhatIsDoneAndRedoesMissingFiles() throws {
        let inputs = try inputs()
        let job = BatchJob.explain(method: "saliency", options: Options())
        _ = try runner(job, into: "out").run(inputs)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("out/dress.npy"))
        let summary = try runner(job, into: "out", resume: true).run(inputs)
        XCTAssertEqual(summary.progress, BatchProgress(done: 1, failed: 1, skipped: 3, total: 2))
        XCTAssertEqual(try BatchIndex.read(summary.index).count, 5)
    }

    func testCancelledRunStopsBeforeTheNextBatch() throws {
        let flag = CancellationFlag()
        flag.cancel(signal: 15)
        let summary = try runner(.predict, into: "out").run(try inputs(), cancellation: flag)
        XCTAssertEqual(summary.cancelledBy, 15)
        XCTAssertEqual(summary.progress.done + summary.progress.failed, 0)
    }

    /// Methods random, with a backward pass, and forward only, batched, sharded and single:
    /// the same files byte for byte.
    func testRandomAndBatchedMethodsGiveTheSameFilesWhateverTheSplit() throws {
        let inputs = try inputs()
        for (method, options) in [("gradient-shap", Options(["seed": .string("5")])),
                                  ("integrated-gradients", Options(["steps": .number(8)])),
                                  ("occlusion", Options(["window": .string("3,7,7"), "stride": .string("3,7,7")]))] {
            _ = try runner(.explain(method: method, options: options), into: "\(method)-single").run(inputs)
            _ = try runner(.explain(method: method, options: options), into: "\(method)-batched", batchSize: 4).run(inputs)
            for index in 0..<2 {
                let shard = try Shard(index: index, count: 2)
                _ = try runner(.explain(method: method, options: options), into: "\(method)-sharded", batchSize: 2,
                               shard: shard).run(shard.select(inputs))
            }
            let single = try files("\(method)-single")
            XCTAssertEqual(single.count, 4)
            XCTAssertEqual(try files("\(method)-batched"), single, method)
            XCTAssertEqual(try files("\(method)-sharded"), single, method)
        }
    }

    func testPredictWritesOnlyTheIndex() throws {
        let summary = try runner(.predict, into: "out", batchSize: 4).run(try inputs())
        XCTAssertEqual(summary.progress.done, 4)
        let records = try BatchIndex.read(summary.index)
        XCTAssertEqual(records.count, 5)
        XCTAssertTrue(records.filter { $0.error == nil }.allSatisfy { $0.output == nil && $0.predicted != nil && $0.probability != nil })
        XCTAssertEqual(try files("out"), [:])
    }
}
