import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate predict --model weights.pth`: PyTorch checkpoints read natively give the
/// logits the same weights give from safetensors, and every refused checkpoint is one
/// line on stderr naming the file.
final class PthCommandTests: TemporaryFolderTestCase {
    var safetensors: URL!
    var input: URL!
    var stateDict: StateDict!

    /// A ResNet18 with 2 classes on a 64×48 input: golden case `resnet18_n1_64x48_c2`.
    override func setUpWithError() throws {
        try super.setUpWithError()
        safetensors = folder.appendingPathComponent("resnet18.safetensors")
        input = folder.appendingPathComponent("x.npy")
        stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet18")!, classes: 2)
        try SafetensorsWriter.write(stateDict.tensors, to: safetensors)
        try NPY.write(DeterministicWeights.input(shape: [1, 3, 64, 48]), to: input)
    }

    /// Logits of `predict --model model --input-tensor x.npy`.
    private func logits(_ model: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
        let output = path("logits-\(UUID().uuidString).npy")
        let result = try runElucidate(["predict", "--model", model, "--input-tensor", input.path, "--logits", output])
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr, "", file: file, line: line)
        return try NPY.readFloat32(URL(fileURLWithPath: output))
    }

    private func assertIdentical(_ actual: Tensor, _ expected: Tensor, _ what: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, what, file: file, line: line)
        XCTAssertEqual(actual.scalars.map(\.bitPattern), expected.scalars.map(\.bitPattern), what, file: file, line: line)
    }

    // MARK: - Parity

    func testPthAndSafetensorsGiveIdenticalLogits() throws {
        let pth = path("resnet18.pth")
        try TorchCheckpoint.encode(stateDict.tensors).write(to: URL(fileURLWithPath: pth))
        let reference = try logits(safetensors.path)
        assertIdentical(try logits(pth), reference, ".pth vs .safetensors")
        let golden = try NPY.readFloat32(fixtureURL("golden/resnet18_n1_64x48_c2.logits.npy"))
        XCTAssertLessThanOrEqual(relativeL2Error(reference.scalars, golden.scalars), 1e-4)

        // DataParallel's 'module.' prefix, and any file name: the contents decide.
        let prefixed = Dictionary(uniqueKeysWithValues: stateDict.tensors.map { ("module.\($0.key)", $0.value) })
        let renamed = path("weights.bin")
        try TorchCheckpoint.encode(prefixed).write(to: URL(fileURLWithPath: renamed))
        assertIdentical(try logits(renamed), reference, "module. prefix")
    }

    /// The same deterministic weights written by torch.save itself (tools/resnet.py, with
    /// num_batches_tracked): skipped where python3 with torch is not available.
    func testTorchSaveWrittenPthGivesIdenticalLogits() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import torch"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("python3 with torch is not available") }

        let pth = path("torch-resnet18.pth")
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        writer.arguments = ["python3", packageRootURL.appendingPathComponent("tools/make_pth_fixtures.py").path, "--resnet18", pth]
        try writer.run()
        writer.waitUntilExit()
        XCTAssertEqual(writer.terminationStatus, 0)
        assertIdentical(try logits(pth), try logits(safetensors.path), "torch.save vs safetensors")
    }

    // MARK: - Refusals: one line on stderr naming the file, non-zero status, no output

    private func assertRefused(_ model: String, mentioning fragments: String...,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let output = path("out.npy")
        let result = try runElucidate(["predict", "--model", model, "--input-tensor", input.path, "--logits", output])
        XCTAssertNotEqual(result.status, 0, "accepted: \(model)", file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "stderr: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(model), "stderr \(result.stderr) does not name \(model)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(result.stderr.contains(fragment), "stderr \(result.stderr) lacks \(fragment)", file: file, line: line)
        }
        XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("Backtrace"), file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "partial output left", file: file, line: line)
        XCTAssertEqual(result.stdout, "", file: file, line: line)
    }

    func testWholePickledModelsAreRefusedWithAdvice() throws {
        try assertRefused(fixtureURL("pth/learner_export.pkl").path,
                          mentioning: "refuses to load 'fastai.learner.Learner': only state dicts (tensors in dicts) are supported",
                          "torch.save(learn.model.state_dict(), 'weights.pth') or learn.save('weights')")
        try assertRefused(fixtureURL("pth/pickled_module.pth").path,
                          mentioning: "refuses to load 'torch.nn.modules.container.Sequential'", "save the weights instead")
    }

    func testExecutableGlobalsAndOtherFormatsAreRefused() throws {
        try assertRefused(fixtureURL("pth/os_system.pth").path, mentioning: "refuses to load 'os.system'")
        try assertRefused(fixtureURL("pth/legacy.pth").path, mentioning: "legacy PyTorch checkpoint", "re-save it with a current PyTorch")
        try assertRefused(fixtureURL("pth/torchscript.pt").path, mentioning: "TorchScript archive")
    }

    func testDamagedCheckpointsAreRefused() throws {
        let good = TorchCheckpoint.encode(stateDict.tensors)
        let truncated = path("truncated.pth")
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: truncated))
        try assertRefused(truncated, mentioning: "zip archive")

        var corrupt = good
        let archive = try ZipArchive(bytes: good)
        let entry = try XCTUnwrap(archive.entry("archive/data/3"))
        corrupt[entry.dataOffset + entry.size / 2] ^= 0x10
        let corrupted = path("corrupt.pth")
        try corrupt.write(to: URL(fileURLWithPath: corrupted))
        try assertRefused(corrupted, mentioning: "entry 'archive/data/3' is corrupt: CRC-32")

        // Not a ResNet: the architecture check names what is missing.
        try assertRefused(fixtureURL("pth/tiny.pth").path, mentioning: "missing")
    }
}
