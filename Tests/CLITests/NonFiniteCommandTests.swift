import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, item 6: weights with NaN loaded and `predict` printed `nan%`; an input tensor or
/// baseline with NaN or infinity gave NaN attributions and a NaN convergence delta with exit 0.
/// Now each is one `elucidate: …` line naming the file and the first bad element, exit 1, and
/// nothing is written.
final class NonFiniteCommandTests: TemporaryFolderTestCase {
    var model: String!
    let sneaker = packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path

    override func setUpWithError() throws {
        try super.setUpWithError()
        model = try write("m.safetensors") { url in
            let stateDict = DeterministicWeights.stateDict(ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 3)
            try SafetensorsWriter.write(stateDict.tensors, to: url)
        }
    }

    private func write(_ name: String, _ body: (URL) throws -> Void) throws -> String {
        try body(URL(fileURLWithPath: path(name)))
        return path(name)
    }

    /// A (1, 3, 16, 16) tensor of small values with `value` at flat `index`.
    private func tensor(_ name: String, _ value: Float, at index: Int, batch: Int = 1) throws -> String {
        var x = DeterministicWeights.input(shape: [batch, 3, 16, 16])
        x.withUnsafeMutableBufferPointer { $0[index] = value }
        return try write(name) { try NPY.write(x, to: $0) }
    }

    private func assertRefused(_ arguments: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runElucidate(arguments)
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr, "elucidate: \(expected)\n", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.npy")), "wrote output", file: file, line: line)
    }

    func testWeightsWithNaNAreRefusedWhenLoaded() throws {
        let poisoned = try write("nan.safetensors") { url in
            var stateDict = DeterministicWeights.stateDict(ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 3)
            stateDict.tensors["fc.bias"] = Tensor(shape: [3], values: [.nan, 0, 0])
            try SafetensorsWriter.write(stateDict.tensors, to: url)
        }
        let x = try tensor("x.npy", 0.5, at: 0)
        try assertRefused(["predict", "--model", poisoned, "--input-tensor", x],
                          "\(poisoned): non-finite value in weight 'fc.bias': nan at element 0; the file is damaged or the training diverged")
    }

    func testInputTensorsAndBaselinesWithNaNOrInfinityAreRefused() throws {
        let nan = try tensor("nan.npy", .nan, at: 256 + 16 * 2 + 5, batch: 2)  // [0, 1, 2, 5]
        let inf = try tensor("inf.npy", .infinity, at: 3 * 256 + 7, batch: 2)  // [1, 0, 0, 7]
        let clean = try tensor("x.npy", 0.5, at: 0, batch: 2)
        let out = path("out.npy")
        try assertRefused(["predict", "--model", model, "--input-tensor", nan],
                          "\(nan): non-finite value in the input tensor: nan at element [0, 1, 2, 5]; it must hold finite numbers only")
        for method in [["saliency"], ["integrated-gradients", "--steps", "2"]] {
            try assertRefused(["explain"] + method + ["--model", model, "--input-tensor", inf, "--attributions", out],
                              "\(inf): non-finite value in the input tensor: inf at element [1, 0, 0, 7]; it must hold finite numbers only")
        }
        try assertRefused(["explain", "integrated-gradients", "--model", model, "--input-tensor", clean, "--baseline", inf,
                           "--steps", "2", "--attributions", out],
                          "\(inf): non-finite value in the baseline: inf at element [1, 0, 0, 7]; it must hold finite numbers only")
        try assertRefused(["explain", "gradient-shap", "--model", model, "--input-tensor", clean, "--baselines", nan,
                           "--attributions", out],
                          "\(nan): non-finite value in the baselines: nan at element [0, 1, 2, 5]; it must hold finite numbers only")
        try assertRefused(["explain", "deeplift-shap", "--model", model, "--input-tensor", clean, "--baselines", nan,
                           "--attributions", out],
                          "\(nan): non-finite value in the baselines: nan at element [0, 1, 2, 5]; it must hold finite numbers only")
        try assertRefused(["visualize", path("x.npy"), "--input-tensor", nan, "--preset", "none", "--out", path("out.png")],
                          "\(nan): non-finite value in the input tensor: nan at element [0, 1, 2, 5]; it must hold finite numbers only")
    }

    /// Finite weights and inputs can still overflow float32 inside the model: the logits, or
    /// the attributions and convergence delta, are refused instead of printed or written.
    func testResultsThatOverflowAreNotWritten() throws {
        let huge = try write("huge.npy") { try NPY.write(Tensor(shape: [1, 3, 28, 28], repeating: 3e37), to: $0) }
        for arguments in [["predict"], ["explain", "saliency", "--attributions", path("out.npy")]] {
            let result = try runElucidate(arguments + ["--input-tensor", huge])
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("elucidate: \(huge): non-finite value in the model's output: "), result.stderr)
            XCTAssertTrue(result.stderr.hasSuffix("; its arithmetic overflows float32 on this input\n"), result.stderr)
        }
        // The input is fine, its baseline (a constant) overflows: the convergence delta is NaN.
        try assertRefused(["explain", "integrated-gradients", sneaker, "--baseline=-3e38", "--steps", "2", "--attributions", path("out.npy")],
                          "\(sneaker): integrated-gradients gave a non-finite convergence delta (nan for input 0): "
                          + "the model's arithmetic overflows float32 on this input (or its baseline)")
    }
}
