import Elucidate
import Foundation
import TestSupport
import XCTest

/// Bad input to `predict`, `explain` and `visualize` — images of different sizes, baselines,
/// masks, windows and attributions of the wrong shape, outputs that would clobber an input
/// or cannot all be written — ends as one `elucidate: …` line on stderr and a non-zero exit:
/// never a crash, never a file written or an input changed.
final class BadInputCommandTests: XCTestCase {
    var folder: URL!
    var model: String!
    /// 60×40, 32×32 and 32×32 PNG images: with preset `none`, a and b differ in size, b and c do not.
    var a: String!, b: String!, c: String!
    /// A (2, 3, 32, 32) input tensor.
    var x: String!

    override func setUpWithError() throws {
        folder = try makeTemporaryDirectory("elucidate-bad-input")
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 3)
        model = path("m.safetensors")
        try SafetensorsWriter.write(stateDict.tensors, to: URL(fileURLWithPath: model))
        a = try png("a.png", width: 60, height: 40, seed: 1)
        b = try png("b.png", width: 32, height: 32, seed: 2)
        c = try png("c.png", width: 32, height: 32, seed: 3)
        x = try npy("x.npy", DeterministicWeights.input(shape: [2, 3, 32, 32]))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// A PNG of a deterministic pattern.
    private func png(_ name: String, width: Int, height: Int, seed: Int) throws -> String {
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                pixels += [UInt8((x * 7 + seed * 31) % 256), UInt8((y * 11 + seed * 17) % 256), UInt8((x * y + seed) % 256), 255]
            }
        }
        try PNGWriter.write(Canvas(width: width, height: height, pixels: pixels), to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    private func npy(_ name: String, _ tensor: Tensor) throws -> String {
        try NPY.write(tensor, to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    /// Every file of the test folder with its bytes.
    private func snapshot() throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path(name), isDirectory: &isDirectory), !isDirectory.boolValue {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: path(name)))
            }
        }
        return files
    }

    /// Runs `arguments` and checks the refusal: non-zero exit, exactly one stderr line that
    /// starts `elucidate: ` and contains `expected`, no crash report, and the folder exactly
    /// as before (no output, no temporary file, every input unchanged).
    private func assertRefused(_ arguments: [String], mentioning expected: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot()
        let result = try runElucidate(arguments)
        let command = arguments.joined(separator: " ")
        XCTAssertNotEqual(result.status, 0, "accepted: \(command)", file: file, line: line)
        XCTAssertLessThan(result.status, 128, "killed by a signal: \(command)", file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n", omittingEmptySubsequences: false).count, 2,
                       "\(command): stderr \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("elucidate: "), "\(command): stderr \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(expected), "\(command): stderr \(result.stderr) lacks \(expected)", file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("Precondition"), file: file, line: line)
        let after = try snapshot()
        XCTAssertEqual(Set(after.keys), Set(before.keys), "\(command): files created or removed", file: file, line: line)
        for (name, bytes) in before where after[name] != bytes {
            XCTFail("\(command): \(name) changed", file: file, line: line)
        }
    }

    private func explain(_ method: String, _ arguments: [String]) -> [String] {
        ["explain", method, "--model", model] + arguments
    }

    // MARK: - Images of different sizes

    func testExplainRefusesImagesOfDifferentSizesBeforeAnyWork() throws {
        let expected = "images differ in size after preprocessing (\(a!) is 3×40×60, \(b!) is 3×32×32); "
            + "with --preset none every image must have the same size — resize them or run one at a time"
        for (method, extra) in [("saliency", []), ("integrated-gradients", ["--steps", "2"]),
                                ("gradient-shap", ["--samples", "2", "--seed", "1"]),
                                ("occlusion", ["--window", "3,8,8", "--stride", "3,8,8", "--quiet"]),
                                ("feature-ablation", ["--grid", "2", "--quiet"]),
                                ("shapley-value-sampling", ["--superpixels", "4", "--samples", "1", "--quiet"]),
                                ("saliency", ["--noise-tunnel", "smoothgrad", "--nt-samples", "2"])] {
            try assertRefused(explain(method, [a, b, "--preset", "none", "--attributions", path("out.npy")] + extra),
                              mentioning: expected)
        }
        try assertRefused(explain("saliency", [a, b, "--preset", "none", "--visualize", path("out.png")]), mentioning: expected)
        try assertRefused(explain("saliency", [b, c, a, "--preset", "none", "--attributions", path("out.npy")]),
                          mentioning: "(\(b!) is 3×32×32, \(a!) is 3×40×60)")
    }

    func testExplainStillRunsImagesOfOneSize() throws {
        let out = path("s.npy")
        let result = try runElucidate(explain("saliency", [b, c, "--preset", "none", "--attributions", out]))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: out)).shape, [2, 3, 32, 32])
    }

    /// predict runs each image alone, so images of different sizes are each classified at
    /// their own size, and the logits are still one (N, classes) array.
    func testPredictClassifiesImagesOfDifferentSizesOneAtATime() throws {
        let both = path("both.npy")
        let result = try runElucidate(["predict", "--model", model, a, b, "--preset", "none", "--logits", both, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        let logits = try NPY.readFloat32(URL(fileURLWithPath: both))
        XCTAssertEqual(logits.shape, [2, 3])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((report["inputs"] as? [[String: Any]])?.compactMap { $0["input"] as? String }, [a, b])
        for (row, image) in [a!, b!].enumerated() {
            let alone = path("alone\(row).npy")
            let single = try runElucidate(["predict", "--model", model, image, "--preset", "none", "--logits", alone])
            XCTAssertEqual(single.status, 0, single.stderr)
            let expected = try NPY.readFloat32(URL(fileURLWithPath: alone))
            assertClose(Array(logits.scalars[(row * 3)..<(row * 3 + 3)]), expected.scalars, rtol: 1e-5, atol: 1e-6, image)
        }
    }

    // MARK: - Baselines, masks and windows that do not fit the input

    func testBaselinesOfTheWrongShape() throws {
        let out = path("out.npy")
        let small = try npy("small.npy", Tensor(zeros: [1, 3, 16, 16]))
        let flat = try npy("flat.npy", Tensor(zeros: [3, 16]))
        let none = try npy("none.npy", Tensor(zeros: [0, 3, 32, 32]))
        for file in [small, flat] {
            for method in ["integrated-gradients", "deeplift"] {
                try assertRefused(explain(method, ["--input-tensor", x, "--baseline", file, "--attributions", out]),
                                  mentioning: "the baseline has shape")
            }
            try assertRefused(explain("occlusion", ["--input-tensor", x, "--baseline", file, "--quiet", "--attributions", out]),
                              mentioning: "it must match the input [2, 3, 32, 32]")
            try assertRefused(explain("feature-ablation", ["--input-tensor", x, "--grid", "2", "--baseline", file, "--quiet",
                                                           "--attributions", out]),
                              mentioning: "the baseline has shape")
        }
        for file in [small, flat, none] {
            for method in ["gradient-shap", "deeplift-shap"] {
                try assertRefused(explain(method, ["--input-tensor", x, "--baselines", file, "--attributions", out]),
                                  mentioning: "baselines must have shape (B, 3, 32, 32)")
            }
        }
    }

    func testFeatureMasksThatDoNotFit() throws {
        let out = path("out.npy")
        let small = try npy("mask16.npy", Tensor(zeros: [1, 1, 16, 16]))  // float32: the wrong dtype too
        let mask = path("mask.npy")
        try NPY.write(int32: [Int32](repeating: 0, count: 256), shape: [1, 1, 16, 16], to: URL(fileURLWithPath: mask))
        let rank5 = path("mask5.npy")
        try NPY.write(int32: [Int32](repeating: 0, count: 1024), shape: [1, 1, 1, 32, 32], to: URL(fileURLWithPath: rank5))
        for method in ["feature-ablation", "shapley-value-sampling", "kernel-shap", "lime"] {
            try assertRefused(explain(method, ["--input-tensor", x, "--feature-mask", mask, "--quiet", "--attributions", out]),
                              mentioning: "the feature mask [1, 1, 16, 16] does not broadcast to the input [2, 3, 32, 32]")
        }
        try assertRefused(explain("feature-ablation", ["--input-tensor", x, "--feature-mask", rank5, "--quiet", "--attributions", out]),
                          mentioning: "at most 4 dimensions")
        try assertRefused(explain("feature-ablation", ["--input-tensor", x, "--feature-mask", small, "--quiet", "--attributions", out]),
                          mentioning: "int32")
        try assertRefused(explain("feature-ablation", ["--input-tensor", x, "--grid", "64", "--quiet", "--attributions", out]),
                          mentioning: "does not fit 32×32")
        let gaps = path("gaps.npy")
        try NPY.write(int32: (0..<1024).map { Int32($0 % 2 * 2) }, shape: [1, 1, 32, 32], to: URL(fileURLWithPath: gaps))
        let negative = path("negative.npy")
        try NPY.write(int32: (0..<1024).map { Int32($0 % 2 - 1) }, shape: [1, 1, 32, 32], to: URL(fileURLWithPath: negative))
        for method in ["feature-ablation", "shapley-value-sampling", "kernel-shap", "lime"] {
            try assertRefused(explain(method, ["--input-tensor", x, "--feature-mask", gaps, "--quiet", "--attributions", out]),
                              mentioning: "feature mask ids must be 0…K−1 with none missing; the mask has ids up to 2 but not 1")
            try assertRefused(explain(method, ["--input-tensor", x, "--feature-mask", negative, "--quiet", "--attributions", out]),
                              mentioning: "the mask has the negative id -1")
        }
    }

    /// Windows that would start past the end of the input crashed the occlusion; a window
    /// starting exactly at the end is empty and still runs.
    func testOcclusionStridesLargerThanTheWindow() throws {
        let out = path("out.npy")
        for (window, stride, expected) in [("3,15,15", "3,64,64", "stride [3, 64, 64] is larger than the window [3, 15, 15] along H"),
                                           ("3,15,15", "3,16,15", "stride [3, 16, 15] is larger than the window [3, 15, 15] along H"),
                                           ("3,1,1", "3,1,17", "stride [3, 1, 17] is larger than the window [3, 1, 1] along W"),
                                           ("1,15,15", "5,8,8", "stride [5, 8, 8] is larger than the window [1, 15, 15] along C")] {
            for evaluation in ["incremental", "full"] {
                try assertRefused(explain("occlusion", ["--input-tensor", x, "--window", window, "--stride", stride,
                                                        "--evaluation", evaluation, "--quiet", "--attributions", out]),
                                  mentioning: expected)
            }
        }
        try assertRefused(explain("occlusion", ["--input-tensor", x, "--window", "3,40,15", "--stride", "3,33,33", "--quiet",
                                                "--attributions", out]),
                          mentioning: "the occlusion window [3, 40, 15] exceeds the input [3, 32, 32]")
        let whole = try runElucidate(explain("occlusion", ["--input-tensor", x, "--window", "3,32,32", "--stride", "3,32,32",
                                                           "--quiet", "--attributions", out]))
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: out)).shape, [2, 3, 32, 32])
    }

    func testInputTensorsOfTheWrongShape() throws {
        let out = path("out.npy")
        let empty = try npy("empty.npy", Tensor(zeros: [0, 3, 32, 32]))
        let gray = try npy("gray.npy", Tensor(zeros: [1, 1, 32, 32]))
        let flat = try npy("flat.npy", Tensor(zeros: [3, 32]))
        for command in [explain("saliency", ["--attributions", out]), ["predict", "--model", model!, "--logits", out]] {
            try assertRefused(command + ["--input-tensor", empty], mentioning: "is empty")
            try assertRefused(command + ["--input-tensor", gray], mentioning: "has 1 channels, the model takes 3")
            try assertRefused(command + ["--input-tensor", flat], mentioning: "expected a tensor of shape (N,C,H,W) or (C,H,W)")
        }
    }

    // MARK: - Outputs: never over an input, all or nothing

    func testOutputsNeverOverwriteTheMethodsOwnInputs() throws {
        let baselines = try npy("baselines.npy", Tensor(zeros: [2, 3, 32, 32]))
        let mask = path("mask.npy")
        try NPY.write(int32: (0..<1024).map { Int32($0 / 256) }, shape: [1, 1, 32, 32], to: URL(fileURLWithPath: mask))
        let refusal = "refusing to overwrite an input file"
        try assertRefused(explain("integrated-gradients", ["--input-tensor", x, "--baseline", baselines, "--attributions", baselines]),
                          mentioning: "\(baselines): \(refusal)")
        try assertRefused(explain("deeplift", ["--input-tensor", x, "--baseline", baselines, "--attributions", baselines]),
                          mentioning: refusal)
        try assertRefused(explain("occlusion", ["--input-tensor", x, "--baseline", baselines, "--quiet", "--attributions", baselines]),
                          mentioning: refusal)
        try assertRefused(explain("gradient-shap", ["--input-tensor", x, "--baselines", baselines, "--attributions", baselines]),
                          mentioning: refusal)
        try assertRefused(explain("deeplift-shap", ["--input-tensor", x, "--baselines", baselines, "--attributions", baselines]),
                          mentioning: refusal)
        try assertRefused(explain("feature-ablation", ["--input-tensor", x, "--feature-mask", mask, "--quiet", "--attributions", mask]),
                          mentioning: "\(mask): \(refusal)")
        try assertRefused(explain("lime", ["--input-tensor", x, "--grid", "2", "--baseline", baselines, "--quiet",
                                           "--attributions", baselines]),
                          mentioning: refusal)
        try assertRefused(explain("saliency", ["--input-tensor", x, "--attributions", path("out.npy"), "--visualize", model]),
                          mentioning: "\(model!): \(refusal)")
    }

    /// explain writes the attributions only once the picture is drawn and every output is
    /// known to be writable, so a refusal leaves no attributions file behind.
    func testExplainWritesNothingUnlessEverythingCanBeWritten() throws {
        let out = path("out.npy"), picture = path("out.png")
        let saliency = explain("saliency", ["--input-tensor", x, "--attributions", out])
        try assertRefused(saliency + ["--visualize", x], mentioning: "\(x!): refusing to overwrite an input file")
        try assertRefused(saliency + ["--visualize", path("no/such/folder/out.png")], mentioning: "does not exist")
        try assertRefused(saliency + ["--visualize", out], mentioning: "--attributions and --visualize cannot be the same file")
        try assertRefused(saliency + ["--visualize", picture, "--normalized-map", x], mentioning: "refusing to overwrite an input file")
        try assertRefused(saliency + ["--visualize", picture, "--normalized-map", out],
                          mentioning: "--attributions and --normalized-map cannot be the same file")
        try assertRefused(saliency + ["--visualize", picture, "--normalized-map", picture],
                          mentioning: "the picture and the normalised map cannot be the same file")
        try assertRefused(saliency + ["--visualize", picture, "--normalized-map", path("no/such/folder/map.npy")],
                          mentioning: "does not exist")
        try assertRefused(explain("saliency", ["--input-tensor", x, "--attributions", folder.path]), mentioning: "is a folder")
        // The run fails only once the attributions are computed (a finite baseline that overflows
        // float32 in the model: non-finite results are refused, issue 11 item 6): still nothing written.
        try assertRefused(explain("integrated-gradients", ["--input-tensor", x, "--steps", "2", "--baseline=-3e38",
                                                           "--attributions", out, "--visualize", picture]),
                          mentioning: "integrated-gradients gave a non-finite")
    }

    // MARK: - visualize

    func testVisualizeShapesThatDoNotMatch() throws {
        let out = path("out.png")
        let attributions = try npy("attr.npy", DeterministicWeights.input(key: "attr", shape: [2, 3, 32, 32]))
        let small = try npy("attr16.npy", Tensor(zeros: [1, 3, 16, 16]))
        let twoChannels = try npy("x2.npy", Tensor(zeros: [1, 2, 32, 32]))
        let rank5 = try npy("x5.npy", Tensor(zeros: [1, 1, 3, 32, 32]))
        let empty = try npy("attr0.npy", Tensor(zeros: [1, 3, 0, 5]))
        let photo = ["--panels", "original-image:all", "--out", out]
        try assertRefused(["visualize", small, "--image", b, "--preset", "none"] + photo,
                          mentioning: "\(b!): is 32×32 pixels after none preprocessing but the attributions in \(small) are 16×16")
        try assertRefused(["visualize", small, "--image", a, "--preset", "none"] + photo, mentioning: "is 60×40 pixels")
        try assertRefused(["visualize", small, "--input-tensor", x] + photo,
                          mentioning: "\(x!): is 32×32 pixels but the attributions in \(small) are 16×16")
        try assertRefused(["visualize", attributions, "--input-tensor", x, "--index", "2"] + photo, mentioning: "item 2 does not exist")
        try assertRefused(["visualize", attributions, "--input-tensor", twoChannels] + photo, mentioning: "expected an input tensor of shape")
        try assertRefused(["visualize", attributions, "--input-tensor", rank5] + photo, mentioning: "expected an input tensor of shape")
        try assertRefused(["visualize", empty, "--out", out], mentioning: "are empty")
        try assertRefused(["visualize", attributions, "--out", out, "--normalized-map", attributions],
                          mentioning: "\(attributions): refusing to overwrite an input file")
        try assertRefused(["visualize", attributions, "--out", out, "--normalized-map", path("no/such/folder/map.npy")],
                          mentioning: "does not exist")
    }
}
