import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain lrp` end to end on a small deterministic ResNet18.
final class ExplainLRPCommandTests: XCTestCase {
    var folder: URL!
    var input: String!

    override func setUpWithError() throws {
        folder = try makeTemporaryDirectory("elucidate-lrp")
        input = folder.appendingPathComponent("x.npy").path
        try NPY.write(DeterministicWeights.input(shape: [2, 3, 40, 32]), to: URL(fileURLWithPath: input))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private func model(fastai: Bool = false) throws -> (String, ResNet) {
        var arch = ResNetArchitecture.named("resnet18")!
        if fastai { arch.head = .fastai }
        let stateDict = DeterministicWeights.stateDict(arch, classes: 3)
        let file = path(fastai ? "fastai.safetensors" : "m.safetensors")
        try SafetensorsWriter.write(stateDict.tensors, metadata: [:], to: URL(fileURLWithPath: file))
        return (file, try ResNet(stateDict: stateDict, architecture: arch))
    }

    /// The command writes what the library computes, with per-channel bounds given as text
    /// (negative values included), and reports its settings.
    func testGammaBoxWithBoundsMatchesTheLibrary() throws {
        let (file, network) = try model()
        let out = path("lrp.npy")
        let result = try runElucidate(["explain", "lrp", "--model", file, "--input-tensor", input, "--attributions", out,
                                       "--composite", "epsilon-gamma-box", "--low", "-2,-1.5,-1", "--high", "2,2.5,3",
                                       "--gamma", "0.5", "--target", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let values = try NPY.readFloat32(URL(fileURLWithPath: out))
        let expected = try LRP(composite: .epsilonGammaBox, gamma: 0.5, low: [-2, -1.5, -1], high: [2, 2.5, 3])
            .attribute(network, inputs: DeterministicWeights.input(shape: [2, 3, 40, 32]), targets: [1, 1]).values
        XCTAssertEqual(values.shape, [2, 3, 40, 32])
        XCTAssertLessThanOrEqual(relativeL2Error(values.scalars, expected.scalars), 1e-6)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let options = try XCTUnwrap(report["options"] as? [String: String])
        XCTAssertEqual(options["composite"], "epsilon-gamma-box")
        XCTAssertEqual(options["gamma"], "0.5")
        XCTAssertEqual(options["low"], "-2,-1.5,-1")
    }

    /// Without --composite: epsilon-plus-flat.
    func testDefaultCompositeIsEpsilonPlusFlat() throws {
        let (file, _) = try model()
        let result = try runElucidate(["explain", "lrp", "--model", file, "--input-tensor", input,
                                       "--attributions", path("d.npy"), "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((report["options"] as? [String: String])?["composite"], "epsilon-plus-flat")
    }

    /// Bad options and a fastai model fail with one clear line.
    func testBadOptionsAndFastaiHeadAreRefused() throws {
        let (file, _) = try model()
        for (extra, expected) in [(["--composite", "nope"], "--composite must be one of"),
                                  (["--composite", "epsilon-gamma-box", "--low", "-1,0"], "--low needs 1 or 3 values"),
                                  (["--epsilon", "-1"], "--epsilon must be")] {
            let result = try runElucidate(["explain", "lrp", "--model", file, "--input-tensor", input,
                                           "--attributions", path("bad.npy")] + extra)
            XCTAssertNotEqual(result.status, 0, "\(extra)")
            XCTAssertTrue(result.stderr.contains(expected), "\(extra): \(result.stderr)")
        }
        let (fastai, _) = try model(fastai: true)
        let result = try runElucidate(["explain", "lrp", "--model", fastai, "--input-tensor", input,
                                       "--attributions", path("f.npy")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("torchvision"), result.stderr)
    }
}
