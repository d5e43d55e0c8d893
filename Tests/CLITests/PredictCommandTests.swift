import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate predict` end to end: the built binary on files written by the test.
final class PredictCommandTests: TemporaryFolderTestCase {
    var model: URL!
    var input: URL!
    var expectedLogits: Tensor!

    /// A ResNet18 with 2 classes on a 64×48 input: golden case `resnet18_n1_64x48_c2`.
    override func setUpWithError() throws {
        try super.setUpWithError()
        model = folder.appendingPathComponent("resnet18.safetensors")
        input = folder.appendingPathComponent("x.npy")
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 2)
        try SafetensorsWriter.write(stateDict.tensors, metadata: ["labels": #"["cat","dog"]"#], to: model)
        try NPY.write(DeterministicWeights.input(shape: [1, 3, 64, 48]), to: input)
        expectedLogits = try NPY.readFloat32(fixtureURL("golden/resnet18_n1_64x48_c2.logits.npy"))
    }

    func testLogitsMatchPyTorch() throws {
        let result = try runElucidate(["predict", "--model", model.path, "--input-tensor", input.path,
                                       "--logits", path("logits.npy")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let logits = try NPY.readFloat32(URL(fileURLWithPath: path("logits.npy")))
        XCTAssertEqual(logits.shape, [1, 2])
        XCTAssertLessThanOrEqual(relativeL2Error(logits.scalars, expectedLogits.scalars), 1e-4)
        XCTAssertTrue(result.stdout.contains("cat (0)") || result.stdout.contains("dog (1)"), result.stdout)
        XCTAssertEqual(result.stderr, "")
    }

    func testJSONReport() throws {
        let result = try runElucidate(["predict", "--model", model.path, "--input-tensor", input.path, "--json", "--top-k", "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["architecture"] as? String, "resnet18")
        XCTAssertEqual(json["classes"] as? Int, 2)
        let inputs = try XCTUnwrap(json["inputs"] as? [[String: Any]])
        let top = try XCTUnwrap(inputs.first?["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 2)
        let best = expectedLogits.scalars[0] > expectedLogits.scalars[1] ? 0 : 1
        XCTAssertEqual(top[0]["index"] as? Int, best)
        XCTAssertEqual(top[0]["label"] as? String, ["cat", "dog"][best])
        let probabilities = top.compactMap { ($0["probability"] as? NSNumber)?.doubleValue }
        XCTAssertEqual(probabilities.reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertEqual((top[0]["logit"] as? NSNumber)?.floatValue ?? 0, expectedLogits.scalars[best], accuracy: 1e-4)
    }

    func testImagesAndLabelsFile() throws {
        let labels = path("labels.txt")
        try "first\nsecond\n".write(toFile: labels, atomically: true, encoding: .utf8)
        let images = ["photo.jpg", "rgba.png", "gray.png"].map { fixtureURL("images/\($0)").path }
        let result = try runElucidate(["predict", "--model", model.path, "--labels", labels, "--logits", path("l.npy")] + images)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("first (0)") && result.stdout.contains("second (1)"), result.stdout)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: path("l.npy"))).shape, [3, 2])
    }

    /// OpenBLAS is loaded after Elucidate picks OPENBLAS_CORETYPE, unless the user set it:
    /// both paths are reported as such and give PyTorch's logits.
    func testOpenBLASCoretypeChoiceAndResultsOnEachPath() throws {
        let chosen = try runElucidate(["info", "--json"], unsetting: ["OPENBLAS_CORETYPE"])
        XCTAssertEqual(chosen.status, 0, chosen.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(chosen.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["blasLoaded"] as? Bool, true)
        if report["instructionSet"] as? String == "avx512" {
            XCTAssertEqual(report["openblasCoretype"] as? String, "SkylakeX")
            XCTAssertEqual(report["coretypeSetByElucidate"] as? Bool, true)
            XCTAssertEqual((report["blasCore"] as? String)?.lowercased(), "skylakex")
        }

        let user = try runElucidate(["info", "--json"], environment: ["OPENBLAS_CORETYPE": "Haswell"])
        let userReport = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(user.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(userReport["openblasCoretype"] as? String, "Haswell")
        XCTAssertEqual(userReport["coretypeSetByElucidate"] as? Bool, false)
        XCTAssertEqual((userReport["blasCore"] as? String)?.lowercased(), "haswell")

        for (environment, unsetting) in [([String: String](), ["OPENBLAS_CORETYPE"]), (["OPENBLAS_CORETYPE": "Haswell"], []),
                                         (["OPENBLAS_CORETYPE": "Prescott"], [])] {
            let out = path("logits-\(environment["OPENBLAS_CORETYPE"] ?? "auto").npy")
            let run = try runElucidate(["predict", "--model", model.path, "--input-tensor", input.path, "--logits", out],
                                       environment: environment, unsetting: unsetting)
            XCTAssertEqual(run.status, 0, run.stderr)
            let logits = try NPY.readFloat32(URL(fileURLWithPath: out))
            XCTAssertLessThanOrEqual(relativeL2Error(logits.scalars, expectedLogits.scalars), 1e-4, "\(environment)")
        }
    }

    // MARK: - Bad input: one line on stderr naming the file, non-zero status, no output

    private func assertRefused(_ arguments: [String], mentioning expected: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let output = path("out.npy")
        let result = try runElucidate(["predict"] + arguments + ["--logits", output])
        XCTAssertNotEqual(result.status, 0, "accepted: \(arguments)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "stderr: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(expected), "stderr \(result.stderr) lacks \(expected)", file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("Backtrace"), file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "partial output left", file: file, line: line)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], file: file, line: line)
    }

    private func write(_ name: String, _ bytes: Data) throws -> String {
        let target = path(name)
        try bytes.write(to: URL(fileURLWithPath: target))
        return target
    }

    func testMissingFiles() throws {
        try assertRefused(["--model", path("none.safetensors"), "--input-tensor", input.path], mentioning: "none.safetensors: no such file")
        try assertRefused(["--model", model.path, "--input-tensor", path("none.npy")], mentioning: "none.npy: no such file")
        try assertRefused(["--model", model.path, path("none.jpg")], mentioning: "none.jpg: no such file")
    }

    func testImagesThatAreNotImagesOrAreTruncated() throws {
        for name in ["not_an_image.txt", "truncated.jpg", "truncated.png", "image.gif"] {
            try assertRefused(["--model", model.path, fixtureURL("images/\(name)").path], mentioning: name)
        }
    }

    func testBadSafetensors() throws {
        let good = try Data(contentsOf: model)
        let headerLength = good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        var truncated = good.prefix(Int(8 + headerLength) + 100)
        try assertRefused(["--model", try write("truncated.safetensors", truncated), "--input-tensor", input.path],
                          mentioning: "truncated.safetensors")
        truncated = Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0]) + good.dropFirst(8)
        try assertRefused(["--model", try write("badheader.safetensors", truncated), "--input-tensor", input.path],
                          mentioning: "badheader.safetensors")
        let unknown = safetensors(header: #"{"fc.weight":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, payload: 4)
        try assertRefused(["--model", try write("dtype.safetensors", unknown), "--input-tensor", input.path],
                          mentioning: "unknown dtype 'Q7'")
        let short = safetensors(header: #"{"fc.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, payload: 4)
        try assertRefused(["--model", try write("offsets.safetensors", short), "--input-tensor", input.path],
                          mentioning: "offsets.safetensors")
    }

    func testUnknownArchitecture() throws {
        let notResNet = try write("mlp.safetensors", SafetensorsWriter.encode(["0.weight": Tensor(zeros: [4, 4])]))
        try assertRefused(["--model", notResNet, "--input-tensor", input.path], mentioning: "missing 'bn1.bias'")
        try assertRefused(["--model", model.path, "--arch", "resnet50", "--input-tensor", input.path], mentioning: "does not match resnet50")
    }

    func testBadTensors() throws {
        let float64 = try write("f8.npy", npy(descr: "<f8", shape: "(1, 3, 4, 4)", payload: 8 * 48))
        try assertRefused(["--model", model.path, "--input-tensor", float64], mentioning: "f8.npy")
        let bigEndian = try write("be.npy", npy(descr: ">f4", shape: "(1, 3, 4, 4)", payload: 4 * 48))
        try assertRefused(["--model", model.path, "--input-tensor", bigEndian], mentioning: "be.npy")
        let rank2 = path("rank2.npy")
        try NPY.write(Tensor(zeros: [3, 4]), to: URL(fileURLWithPath: rank2))
        try assertRefused(["--model", model.path, "--input-tensor", rank2], mentioning: "rank2.npy")
        let oneChannel = path("gray.npy")
        try NPY.write(Tensor(zeros: [1, 1, 8, 8]), to: URL(fileURLWithPath: oneChannel))
        try assertRefused(["--model", model.path, "--input-tensor", oneChannel], mentioning: "channels")
        let empty = path("empty.npy")
        try NPY.write(Tensor(zeros: [1, 3, 0, 8]), to: URL(fileURLWithPath: empty))
        try assertRefused(["--model", model.path, "--input-tensor", empty], mentioning: "empty")
    }

    func testOutputNeverOverwritesAnInput() throws {
        let before = try Data(contentsOf: input)
        let result = try runElucidate(["predict", "--model", model.path, "--input-tensor", input.path, "--logits", input.path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("refusing to overwrite"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: input), before)
    }

    func testUsageErrorsAreOneLine() throws {
        for arguments in [["predict"], ["predict", "--model", model.path], ["predict", "--model", model.path, "--top-k", "0", input.path],
                          ["predict", "--model", model.path, "--arch", "vgg16", input.path], ["predict", "--bogus"]] {
            let result = try runElucidate(arguments)
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "\(arguments): \(result.stderr)")
        }
    }

    /// A safetensors file with a hand-written header and `payload` zero bytes of data.
    private func safetensors(header: String, payload: Int) -> Data {
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header.utf8)
        data.append(Data(count: payload))
        return data
    }

    private func npy(descr: String, shape: String, payload: Int) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header.utf8)
        data.append(Data(count: payload))
        return data
    }
}
