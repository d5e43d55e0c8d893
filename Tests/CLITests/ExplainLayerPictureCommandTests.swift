import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain METHOD --visualize` for every layer, neuron, CAM and LRP method on the
/// small deterministic ResNet18: each draws a PNG over the photo, and a layer map with C>1
/// channels draws exactly as its channel sum (N,1,h,w) does.
final class ExplainLayerPictureCommandTests: SmallResNetTestCase {
    /// Every method that reads a layer or a unit, or propagates relevance, with the fewest
    /// steps and samples that run it (the picture, not the values, is under test here).
    private func methodsWithOptions() throws -> [(String, [String])] {
        try NPY.write(int32: (0..<6).map { Int32($0 % 2) }, shape: [1, 1, 3, 2], to: URL(fileURLWithPath: path("mask.npy")))
        let layer3 = ["--layer", "layer3"], steps = ["--steps", "2"], neuron = ["--neuron", "1,0,0"]
        return [
            ("layer-activation", layer3), ("layer-gradient-x-activation", layer3), ("grad-cam", ["--layer", "layer4"]),
            ("layer-integrated-gradients", layer3 + steps), ("layer-conductance", layer3 + steps),
            ("internal-influence", layer3 + steps), ("layer-gradient-shap", layer3 + ["--samples", "2", "--seed", "1"]),
            ("layer-deeplift", layer3), ("layer-feature-ablation", layer3 + ["--layer-mask", path("mask.npy")]),
            ("guided-grad-cam", ["--layer", "layer4"]),
            ("neuron-gradient", layer3 + neuron), ("neuron-guided-backprop", layer3 + neuron),
            ("neuron-integrated-gradients", layer3 + neuron + steps), ("neuron-conductance", layer3 + neuron + steps),
            ("grad-cam-plus-plus", layer3), ("xgrad-cam", layer3), ("hires-cam", layer3), ("layer-cam", layer3),
            ("eigen-cam", layer3), ("score-cam", layer3 + ["--batch-size", "64"]), ("ablation-cam", layer3 + ["--batch-size", "64"]),
            ("lrp", []),
        ]
    }

    func testEveryLayerNeuronCAMAndLRPMethodDraws() throws {
        let methods = try methodsWithOptions()
        let covered = Set(methods.map(\.0))
        for method in ExplainMethod.allCases where method.needsLayer || method == .lrp {
            XCTAssertTrue(covered.contains(method.rawValue), "\(method.rawValue) is not drawn by this test")
        }
        for (method, extra) in methods {
            let picture = path("\(method).png")
            let result = try explain(method, extra + ["--visualize", picture, "--quiet"], output: path("\(method).npy"))
            XCTAssertEqual(result.status, 0, "\(method): \(result.stderr)")
            let canvas = try PNGWriter.read(URL(fileURLWithPath: picture))
            // Drawn over the photo at the photo's size, whatever the layer's resolution.
            XCTAssertEqual([canvas.width, canvas.height], [32, 40], method)
        }
        // A layer without positions (fc: (N,3)) has nothing to draw over the photo: one line, no file.
        let flat = try explain("layer-activation", ["--layer", "fc", "--visualize", path("fc.png")], output: path("fc.npy"))
        XCTAssertNotEqual(flat.status, 0)
        XCTAssertEqual(flat.stderr.split(separator: "\n").count, 1, flat.stderr)
        XCTAssertTrue(flat.stderr.contains("no positions to draw over the photo"), flat.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("fc.png")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("fc.npy")))
    }

    /// A layer method's (N,256,3,2) map draws as its channel sum (N,1,3,2), byte for byte:
    /// the channels are summed at the layer's resolution before the one upsample.
    func testAManyChannelMapDrawsAsItsChannelSum() throws {
        let result = try explain("layer-integrated-gradients",
                                 ["--layer", "layer3", "--steps", "2", "--quiet", "--visualize", path("explain.png"),
                                  "--panels", "blended-heat-map:all,heat-map:positive"],
                                 output: path("lig.npy"))
        XCTAssertEqual(result.status, 0, result.stderr)
        let map = try NPY.readFloat32(URL(fileURLWithPath: path("lig.npy")))
        XCTAssertEqual(map.shape, [2, 256, 3, 2])
        let (n, c, plane) = (map.shape[0], map.shape[1], map.shape[2] * map.shape[3])
        var sums = [Float](repeating: 0, count: n * plane)
        for row in 0..<n {
            for i in 0..<plane {
                // Captum's order: ((c0 + c1) + c2) + … in float32.
                var s = map.scalars[row * c * plane + i]
                for channel in 1..<c { s += map.scalars[(row * c + channel) * plane + i] }
                sums[row * plane + i] = s
            }
        }
        try NPY.write(Tensor(shape: [n, 1, map.shape[2], map.shape[3]], values: sums), to: URL(fileURLWithPath: path("sum.npy")))
        for (source, picture) in [("lig.npy", "many.png"), ("sum.npy", "sum.png")] {
            let drawn = try runElucidate(["visualize", path(source), "--input-tensor", input, "--out", path(picture),
                                          "--panels", "blended-heat-map:all,heat-map:positive"])
            XCTAssertEqual(drawn.status, 0, drawn.stderr)
        }
        let sum = try Data(contentsOf: URL(fileURLWithPath: path("sum.png")))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("many.png"))), sum)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("explain.png"))), sum)
    }
}
