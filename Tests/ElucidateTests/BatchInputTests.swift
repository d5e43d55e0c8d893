import Elucidate
import Foundation
import TestSupport
import XCTest

/// A batch run's inputs: folders walked by content, manifests, output names and sharding.
final class BatchInputTests: TemporaryFolderTestCase {
    private func image(_ name: String) -> URL { packageRootURL.appendingPathComponent("Resources/images/\(name)") }

    private func write(_ data: Data, _ relative: String) throws {
        let url = folder.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    func testFoldersAreWalkedByContentSkippingHiddenFilesAndLinkLoops() throws {
        let png = try Data(contentsOf: image("bag.png"))
        try write(png, "data/bag.png")
        try write(png, "data/no-extension")                        // a PNG by content
        try write(Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]), "data/sub/photo.bin")  // starts like a JPEG
        try write(Data("not an image".utf8), "data/notes.png")    // a PNG by name only
        try write(png, "data/.hidden.png")
        try write(png, "data/.cache/inside.png")
        try FileManager.default.createSymbolicLink(atPath: path("data/sub/loop"), withDestinationPath: "..")
        try write(png, "data/out/picture.png")  // the output folder, inside the input folder
        let inputs = try InputDiscovery.inputs(paths: [path("data")], excluding: path("data/out"))
        XCTAssertEqual(inputs.map(\.relativePath), ["bag.png", "no-extension", "sub/photo.bin"])
        XCTAssertEqual(inputs.map(\.path), [path("data/bag.png"), path("data/no-extension"), path("data/sub/photo.bin")])
        XCTAssertEqual(inputs.map { $0.outputPath(extension: "npy") }, ["bag.npy", "no-extension.npy", "sub/photo.npy"])
    }

    func testAFileGivenByNameIsAnInputWhateverItHolds() throws {
        try write(Data("broken".utf8), "broken.png")
        let inputs = try InputDiscovery.inputs(paths: [path("broken.png")])
        XCTAssertEqual(inputs, [BatchInput(path: path("broken.png"), relativePath: "broken.png")])
    }

    func testInputsWritingOneOutputAreRefused() throws {
        let png = try Data(contentsOf: image("bag.png"))
        try write(png, "a/x.png")
        try write(png, "a/x.jpg")
        XCTAssertThrowsError(try InputDiscovery.inputs(paths: [path("a")])) { error in
            XCTAssertTrue("\(error)".contains("would both write the outputs named x.*"), "\(error)")
        }
    }

    func testManifestLinesTargetsCommentsAndRelativePaths() throws {
        let text = "# a comment\n\nimages/a.png\t3\r\nimages/./b.png\tSneaker\n  \n/abs/c.png\n../up/d.png\t \nsub/../e.jpg\n"
        let entries = try Manifest.parse(text, folder: "/lists")
        XCTAssertEqual(entries.map(\.path), ["/lists/images/a.png", "/lists/images/./b.png", "/abs/c.png", "/lists/../up/d.png",
                                             "/lists/sub/../e.jpg"])
        XCTAssertEqual(entries.map(\.relativePath), ["images/a.png", "images/b.png", "abs/c.png", "up/d.png", "e.jpg"])
        XCTAssertEqual(entries.map(\.target), [.index(3), .label("Sneaker"), nil, nil, nil])
        XCTAssertEqual(try Manifest.parse("x.png\n", folder: "").map(\.path), ["x.png"])
        XCTAssertThrowsError(try Manifest.parse("\t3\n", folder: ""))
    }

    func testManifestFileIsUTF8() throws {
        try write(Data([0x61, 0xFF, 0x0A]), "list.txt")
        XCTAssertThrowsError(try Manifest.read(path("list.txt"))) { error in
            XCTAssertTrue("\(error)".contains("UTF-8"), "\(error)")
        }
        try write(Data("a.png\t1\n".utf8), "list.txt")
        XCTAssertEqual(try Manifest.read(path("list.txt")), [BatchInput(path: path("a.png"), relativePath: "a.png", target: .index(1))])
    }

    func testShardsAreDisjointCompleteAndStableUnderReordering() throws {
        let inputs = (0..<10).map { BatchInput(path: "/d/\($0).png", relativePath: "img\($0).png") }
        let sorted = try InputDiscovery.sortedRefusingClashes(inputs)
        var generator = SystemRandomNumberGenerator()
        let shuffled = try InputDiscovery.sortedRefusingClashes(inputs.shuffled(using: &generator))
        var seen: [BatchInput] = []
        for index in 0..<3 {
            let shard = try Shard(index: index, count: 3)
            XCTAssertEqual(shard.select(sorted), shard.select(shuffled))
            seen += shard.select(sorted)
        }
        XCTAssertEqual(Set(seen.map(\.path)), Set(inputs.map(\.path)))
        XCTAssertEqual(seen.count, inputs.count)
        XCTAssertEqual(try Shard(index: 1, count: 3).select(sorted).map(\.relativePath), ["img1.png", "img4.png", "img7.png"])
    }

    func testShardParsingAndSchedulerVariables() throws {
        XCTAssertEqual(try Shard(parsing: "1/3"), try Shard(index: 1, count: 3))
        for bad in ["3/3", "-1/3", "1", "a/b", "0/0"] { XCTAssertThrowsError(try Shard(parsing: bad), bad) }
        func from(_ environment: [String: String], count: Int? = nil) throws -> String? {
            try Shard.fromEnvironment(environment, shardCount: count).map { "\($0.shard) \($0.source)" }
        }
        XCTAssertNil(try from([:]))
        XCTAssertEqual(try from(["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"]), "2/3 SLURM_ARRAY_TASK_ID")
        XCTAssertEqual(try from(["SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"]),
                       "1/3 SLURM_ARRAY_TASK_ID")
        XCTAssertEqual(try from(["JOB_COMPLETION_INDEX": "0", "ELUCIDATE_SHARD_COUNT": "2"]), "0/2 JOB_COMPLETION_INDEX")
        XCTAssertEqual(try from(["JOB_COMPLETION_INDEX": "1", "ELUCIDATE_SHARD_COUNT": "2"], count: 4), "1/4 JOB_COMPLETION_INDEX")
        XCTAssertThrowsError(try from(["JOB_COMPLETION_INDEX": "1"]))
        XCTAssertThrowsError(try from(["SLURM_ARRAY_TASK_ID": "1"]))
    }

    func testInputSeedsDependOnTheRelativePathOnly() {
        XCTAssertEqual(InputSeed.seed(7, relativePath: "a/b.png"), InputSeed.seed(7, relativePath: "a/b.png"))
        XCTAssertNotEqual(InputSeed.seed(7, relativePath: "a/b.png"), InputSeed.seed(7, relativePath: "a/c.png"))
        XCTAssertNotEqual(InputSeed.seed(7, relativePath: "a/b.png"), InputSeed.seed(8, relativePath: "a/b.png"))
    }
}
