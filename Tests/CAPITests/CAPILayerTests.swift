import Elucidate
import Foundation
import TestSupport
import XCTest

/// Attributions of a layer's shape through the C API (Programs/layers.c): the shape announced
/// before the run, the three ways to get the values (elu_explain, elu_explain_into,
/// elu_explain_alloc) and their pictures (elu_visualize_map) equal to the command line's,
/// and every misuse a status code, never a crash. On SmallResNetTestCase's ResNet18, whose
/// layer4 is (N,512,2,1) and layer3 (N,256,3,2) for the inputs (2,3,40,32).
final class CAPILayerTests: SmallResNetTestCase {
    /// grad-cam on layer4 (through elu_explain, whose input-sized buffer holds the smaller
    /// map), score-cam with a small batch (elu_explain_into) and layer-integrated-gradients on
    /// layer3 with its (N,C,h,w) shape (elu_explain_alloc): the C program's values and PNG are
    /// the command line's `--attributions` and `--visualize`, bit for bit.
    func testLayerMethodsFromCEqualTheCommandLine() throws {
        let program = try compileTestProgram("layers")
        let raw = try writeRaw(inputTensor, "x.f32")
        let cases: [(method: String, json: String, arguments: [String], mode: String, shape: [Int])] = [
            ("grad-cam", #"{"layer": "layer4"}"#, ["--layer", "layer4"], "explain", [2, 1, 2, 1]),
            ("score-cam", #"{"layer": "layer4", "batch-size": 3}"#, ["--layer", "layer4", "--batch-size", "3"], "into", [2, 1, 2, 1]),
            ("layer-integrated-gradients", #"{"layer": "layer3", "steps": 4}"#, ["--layer", "layer3", "--steps", "4"], "alloc",
             [2, 256, 3, 2]),
        ]
        for (method, json, arguments, mode, shape) in cases {
            let c = try run(program, ["run", model, raw, "2", "3", "40", "32", method, json, mode, path("\(method).f32"),
                                      path("\(method)-c.png")])
            XCTAssertEqual(c.status, 0, "\(method): \(c.stderr)")
            XCTAssertTrue(c.stdout.hasPrefix("shape \(shape.map(String.init).joined(separator: ",")) rank 4\n"), c.stdout)
            XCTAssertTrue(c.stdout.contains("\"method\" : \"\(method)\""), c.stdout)
            let cli = try explain(method, arguments + ["--visualize", path("\(method)-cli.png"), "--quiet"],
                                  output: path("\(method).npy"))
            XCTAssertEqual(cli.status, 0, "\(method): \(cli.stderr)")
            let expected = try NPY.readFloat32(URL(fileURLWithPath: path("\(method).npy")))
            XCTAssertEqual(expected.shape, shape, method)
            XCTAssertEqual(try readRaw("\(method).f32"), expected.scalars, "\(method): the C API's values differ from the command line's")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("\(method)-c.png"))),
                           try Data(contentsOf: URL(fileURLWithPath: path("\(method)-cli.png"))),
                           "\(method): elu_visualize_map's picture differs from --visualize's")
        }
    }

    /// Bad shapes, buffers and options for the layer functions: ELU_ERROR_INVALID_ARGUMENT and
    /// a message each, no crash, no partial picture (Programs/layers.c lists them).
    func testMisuseIsAStatusCodeNotACrash() throws {
        let program = try compileTestProgram("layers")
        let raw = try writeRaw(inputTensor, "x.f32")
        let result = try run(program, ["misuse", model, raw, "2", "3", "40", "32", folder.path])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains(", 0 failed"), result.stdout)
        XCTAssertFalse(result.stdout.contains("FAILED"), result.stdout)
    }

    /// `Explainer.attributionShape` (elu_attribution_shape) is the shape `explain` returns, for
    /// every method that reads a layer or a unit, and LRP.
    func testAnnouncedShapeIsTheResultShapeForEveryLayerMethod() throws {
        try NPY.write(int32: (0..<6).map { Int32($0 % 2) }, shape: [1, 1, 3, 2], to: URL(fileURLWithPath: path("mask.npy")))
        let explainer = Explainer(classifier: try ModelLoader.load(model))
        let layer3: [String: OptionValue] = ["layer": .string("layer3")]
        let few: [String: OptionValue] = ["steps": .number(2), "samples": .number(2), "seed": .number(1)]
        var cases: [(String, [String: OptionValue])] = ExplainMethod.allCases.filter { $0.needsLayer || $0 == .lrp }.map { method in
            var options = method == .lrp ? [:] : layer3
            if method.isNeuronMethod { options["neuron"] = .string("1,0,0") }
            for (name, value) in few where Self.reads(method, name) { options[name] = value }
            if method == .layerFeatureAblation { options["layer-mask"] = .string(path("mask.npy")) }
            if method == .scoreCAM || method == .ablationCAM { options["batch-size"] = .number(64) }
            return (method.rawValue, options)
        }
        cases += [
            ("grad-cam", ["layer": .string("layer4"), "upsample": .string("bilinear")]),
            ("layer-activation", ["layer": .string("layer4"), "layer-input": .bool(true)]),
            ("layer-activation", ["layer": .string("fc")]),
            ("saliency", [:]),
        ]
        for (method, values) in cases {
            let options = Options(values)
            let announced = try explainer.attributionShape(method: method, options: options, inputShape: inputTensor.shape)
            let result = try explainer.explain(method: method, options: options, inputs: inputTensor)
            XCTAssertEqual(announced, result.attributions.shape, "\(method) \(values)")
        }
    }

    /// Whether `method` takes option `name` (steps for the path methods, samples and seed for GradientSHAP).
    private static func reads(_ method: ExplainMethod, _ name: String) -> Bool {
        switch name {
        case "steps": [.layerIntegratedGradients, .layerConductance, .internalInfluence, .neuronIntegratedGradients,
                       .neuronConductance].contains(method)
        default: method == .layerGradientSHAP
        }
    }
}
