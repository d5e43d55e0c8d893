import Elucidate
import Foundation
import TestSupport
import XCTest

/// fastai `vision_learner` weights from the command line: `.safetensors` written here, and a
/// `learn.save`-style `.pth` written by torch itself when python3 has torch.
final class FastaiCommandTests: XCTestCase {
    var folder: URL!
    var input: URL!
    var expected: Tensor!

    /// Golden case `fastai_resnet18_n1_64x48_c2` of tools/golden.py.
    override func setUpWithError() throws {
        folder = try makeTemporaryDirectory("elucidate-fastai")
        input = folder.appendingPathComponent("x.npy")
        try NPY.write(DeterministicWeights.input(shape: [1, 3, 64, 48]), to: input)
        expected = try NPY.readFloat32(fixtureURL("golden/fastai_resnet18_n1_64x48_c2.logits.npy"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func logits(_ model: String, _ extra: [String] = []) throws -> Tensor {
        let out = folder.appendingPathComponent("logits-\(UUID().uuidString).npy").path
        let result = try runElucidate(["predict", "--model", model, "--input-tensor", input.path, "--logits", out] + extra)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try NPY.readFloat32(URL(fileURLWithPath: out))
    }

    func testSafetensorsMatchPyTorch() throws {
        var arch = ResNetArchitecture.named("resnet18")!
        arch.head = .fastai
        let model = folder.appendingPathComponent("fastai.safetensors")
        try SafetensorsWriter.write(DeterministicWeights.stateDict(arch, classes: 2).tensors,
                                    metadata: ["arch": "resnet18", "labels": #"["cat","dog"]"#], to: model)
        for extra in [[], ["--arch", "resnet18"]] {
            let values = try logits(model.path, extra)
            XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.scalars), 1e-4)
        }
        let ig = folder.appendingPathComponent("ig.npy").path
        let result = try runElucidate(["explain", "integrated-gradients", "--model", model.path, "--input-tensor", input.path,
                                       "--steps", "8", "--attributions", ig])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: ig)).shape, [1, 3, 64, 48])
    }

    func testTorchSavedLearnerWeightsMatchPyTorch() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import torch"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("python3 with torch is not available") }
        let pth = folder.appendingPathComponent("learn.pth").path
        let script = """
        import sys, torch
        sys.path.insert(0, sys.argv[1])
        import resnet
        model = resnet.fastai_deterministic_model("resnet18", 2)
        torch.save({"model": model.state_dict(), "opt": None}, sys.argv[2])  # what learn.save writes
        """
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        writer.arguments = ["python3", "-c", script, packageRootURL.appendingPathComponent("tools").path, pth]
        try writer.run()
        writer.waitUntilExit()
        XCTAssertEqual(writer.terminationStatus, 0)
        let values = try logits(pth)
        XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.scalars), 1e-4)
    }
}
