import Elucidate
@testable import ElucidateAttribution
@testable import ElucidateModels
import Foundation
import TestSupport
import XCTest

/// Occlusion: Captum parity (`tools/golden_perturbation.py`) and exactness of the incremental
/// evaluation against full recomputation.
final class OcclusionTests: XCTestCase {
    /// Within 1e-3 of Captum float32, and no further from Captum's float64 run than
    /// `OcclusionAccuracyTests.float64Factor` times Captum float32 is (see there).
    func testMatchesCaptumOnResNet34() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r34_occlusion")
        let (float64, captumDistance) = try PerturbationGolden.float64Reference("r34_occlusion")
        for evaluation in [Occlusion.Evaluation.incremental, .full] {
            let attribution = try Occlusion(window: [3, 45, 45], stride: [3, 40, 40], evaluation: evaluation)
                .attribute(network, inputs: input, targets: targets)
            XCTAssertEqual(attribution.values.shape, expected.shape)
            let error = relativeL2Error(attribution.values.scalars, expected.scalars)
            let toFloat64 = OcclusionAccuracyTests.distance(attribution.values.scalars, float64)
            let report = "r34_occlusion (\(evaluation)): relative L2 error vs Captum \(error), vs Captum float64 \(toFloat64) "
                + "(Captum float32 vs float64 \(captumDistance))"
            print(report)
            XCTAssertLessThanOrEqual(error, 1e-3, report)
            XCTAssertLessThanOrEqual(toFloat64, OcclusionAccuracyTests.float64Factor * captumDistance, report)
            XCTAssertEqual(attribution.details["windows"], "36")
        }
    }

    func testMatchesCaptumWithBaselineChannelWindowsAndPerRowTargets() throws {
        let (network, input, targets, expected) = try PerturbationGolden.load("r18_occlusion_baseline")
        let (float64, captumDistance) = try PerturbationGolden.float64Reference("r18_occlusion_baseline")
        let attribution = try Occlusion(window: [1, 9, 7], stride: [1, 5, 4], baseline: .constant(0.25), perturbationsPerEval: 8)
            .attribute(network, inputs: input, targets: targets)
        let error = relativeL2Error(attribution.values.scalars, expected.scalars)
        let toFloat64 = OcclusionAccuracyTests.distance(attribution.values.scalars, float64)
        let report = "r18_occlusion_baseline: relative L2 error vs Captum \(error), vs Captum float64 \(toFloat64) "
            + "(Captum float32 vs float64 \(captumDistance))"
        print(report)
        XCTAssertLessThanOrEqual(error, 1e-3, report)
        XCTAssertLessThanOrEqual(toFloat64, OcclusionAccuracyTests.float64Factor * captumDistance, report)
    }

    func testWindowCountsFollowCaptum() {
        // ⌈(224 − 15) / 8⌉ + 1 = 28 starts: 0, 8, …, 216 (the last cropped to 216..<224).
        let starts = Occlusion.starts(size: 224, window: 15, stride: 8)
        XCTAssertEqual(starts.count, 28)
        XCTAssertEqual(starts.last, 216)
        XCTAssertEqual(Occlusion.starts(size: 10, window: 10, stride: 3), [0])
        XCTAssertEqual(Occlusion.starts(size: 11, window: 4, stride: 3), [0, 3, 6, 9])
    }

    /// Incremental evaluation equals full recomputation on several window, stride and
    /// image-size combinations (windows overrunning the border included), on basic and
    /// bottleneck blocks and on both stems.
    func testIncrementalEqualsFullRecomputation() throws {
        let basic = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [2, 1, 1, 1]), classes: 5))
        let bottleneck = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .bottleneck, blocksPerStage: [1, 1, 1, 1]), classes: 4))
        let small = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1], stem: .small), classes: 3))
        let cases: [(ResNet, [Int], [Int], [Int], Baseline)] = [
            (basic, [1, 3, 48, 40], [3, 7, 7], [3, 5, 5], .zero),
            (basic, [2, 3, 37, 29], [1, 11, 9], [1, 6, 8], .constant(-0.5)),
            (basic, [1, 3, 64, 64], [3, 15, 15], [3, 8, 8], .zero),
            (basic, [1, 3, 33, 35], [2, 4, 33], [1, 3, 7], .constant(0.3)),
            (bottleneck, [1, 3, 45, 51], [3, 9, 5], [3, 7, 4], .zero),
            (small, [1, 3, 20, 18], [3, 5, 5], [3, 4, 3], .zero),
        ]
        for (index, (network, shape, window, stride, baseline)) in cases.enumerated() {
            let input = DeterministicWeights.input(key: "occlusion-\(index)", shape: shape)
            let targets = (0..<shape[0]).map { ($0 + index) % network.classes }
            let full = try Occlusion(window: window, stride: stride, baseline: baseline, perturbationsPerEval: 7, evaluation: .full)
                .attribute(network, inputs: input, targets: targets)
            for threshold in [0.6, 2.0] {
                // 2.0: never fall back to a whole layer, so every region path is exercised.
                var occlusion = Occlusion(window: window, stride: stride, baseline: baseline, perturbationsPerEval: 5)
                occlusion.fullThreshold = threshold
                let incremental = try occlusion.attribute(network, inputs: input, targets: targets)
                XCTAssertEqual(incremental.details["evaluation"], "incremental")
                let error = relativeL2Error(incremental.values.scalars, full.values.scalars)
                XCTAssertLessThanOrEqual(error, 1e-4, "case \(index), threshold \(threshold)")
                XCTAssertGreaterThan(full.values.scalars.map(abs).max()!, 0, "case \(index)")
            }
        }
    }

    /// Occlusion finds the fast paths through `PerturbationEvaluating`, not the concrete model
    /// type: a Classifier evaluates incrementally like its ResNet, and a model that does not
    /// adopt the protocol falls back to full forward passes through `logits`, with the same
    /// attributions.
    func testModelsReachIncrementalEvaluationThroughTheProtocol() throws {
        /// An AttributionModel around a ResNet that offers no incremental evaluation.
        struct PlainModel: AttributionModel {
            let network: ResNet
            var classes: Int { network.classes }
            func logits(_ input: Tensor) throws(ElucidateError) -> Tensor { try network.logits(input) }
            func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
                try network.logits(input, in: graph)
            }
        }
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 4))
        let classifier = Classifier(network: network, source: URL(fileURLWithPath: "/dev/null"))
        let plain = PlainModel(network: network)
        XCTAssertNotNil(classifier as Any as? any PerturbationEvaluating)
        XCTAssertNil(plain as Any as? any PerturbationEvaluating)
        let input = DeterministicWeights.input(key: "occlusion-protocol", shape: [1, 3, 32, 32])
        let occlusion = Occlusion(window: [3, 8, 8], stride: [3, 6, 6])
        let viaNetwork = try occlusion.attribute(network, inputs: input, targets: [2])
        let viaClassifier = try occlusion.attribute(classifier, inputs: input, targets: [2])
        let viaPlain = try occlusion.attribute(plain, inputs: input, targets: [2])
        XCTAssertEqual(viaNetwork.details["evaluation"], "incremental")
        XCTAssertEqual(viaClassifier.details["evaluation"], "incremental")
        XCTAssertEqual(viaPlain.details["evaluation"], "full")
        XCTAssertEqual(viaClassifier.values.scalars, viaNetwork.values.scalars)
        // The plain model's head runs in float32: equal up to that rounding.
        XCTAssertLessThanOrEqual(relativeL2Error(viaPlain.values.scalars, viaNetwork.values.scalars), 1e-3)
        XCTAssertGreaterThan(viaNetwork.values.scalars.map(abs).max()!, 0)
    }

    func testIncrementalScoresEqualFullForwardPasses() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 6))
        let input = DeterministicWeights.input(key: "scores", shape: [1, 3, 50, 42])
        let occlusion = Occlusion(window: [3, 12, 12], stride: [3, 9, 9])
        let boxes = try occlusion.boxes(rowShape: [3, 50, 42])
        for threshold in [0.0, 0.3, 0.6, 2.0] {
            let evaluator = try IncrementalEvaluator(network: network, input: input, fullThreshold: threshold)
            let baseline = Tensor(shape: input.shape, repeating: 0.1)
            let scores = try evaluator.scores(boxes: boxes, baseline: baseline, target: 2, perPass: 4) { _ in }
            var expected: [Float] = []
            for box in boxes {
                var copy = input
                copy.withUnsafeMutableBufferPointer { values in
                    for c in box.c0..<box.c1 { for y in box.y0..<box.y1 { for x in box.x0..<box.x1 { values[(c * 50 + y) * 42 + x] = 0.1 } } }
                }
                expected.append(try network.logits(copy)[0, 2])
            }
            XCTAssertLessThanOrEqual(relativeL2Error(scores.map(Float.init), expected), 1e-5, "threshold \(threshold)")
        }
    }

    /// The head in double, which occlusion scores with, gives the float head's logits (torchvision
    /// and fastai heads), for the per-image and the batched feature maps.
    func testDoubleHeadEqualsTheFloatHead() throws {
        for head in [ResNetArchitecture.Head.torchvision, .fastai] {
            let network = try ResNet(stateDict: DeterministicWeights.stateDict(
                ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1], head: head), classes: 6))
            let input = DeterministicWeights.input(key: "double-head", shape: [3, 3, 40, 36])
            let logits = try network.logits(input)
            for target in [0, 4] {
                let expected = (0..<3).map { logits[$0, target] }
                for features in [try network.featureMap(input), try network.batchedFeatureMap(input)] {
                    let scores = network.head.targetLogits64(features, target: target).map(Float.init)
                    assertClose(scores, expected, rtol: 1e-5, atol: 1e-5, "\(head) target \(target)")
                }
            }
        }
    }

    func testBatchedForwardEqualsThePerImageForward() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 7))
        let input = DeterministicWeights.input(key: "batched", shape: [5, 3, 36, 44])
        assertClose(try network.batchedLogits(input), try network.logits(input), rtol: 1e-4, atol: 1e-5)
    }

    func testRejectsBadWindows() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 2))
        let input = DeterministicWeights.input(shape: [1, 3, 32, 32])
        XCTAssertThrowsError(try Occlusion(window: [3, 40, 4], stride: [3, 4, 4]).attribute(network, inputs: input, targets: [0]))
        XCTAssertThrowsError(try Occlusion(window: [3, 4], stride: [3, 4, 4]).attribute(network, inputs: input, targets: [0]))
        XCTAssertThrowsError(try Occlusion(window: [3, 4, 4], stride: [3, 0, 4]).attribute(network, inputs: input, targets: [0]))
        for evaluation in [Occlusion.Evaluation.incremental, .full] {
            XCTAssertThrowsError(try Occlusion(window: [3, 4, 4], stride: [3, 5, 4], evaluation: evaluation)
                .attribute(network, inputs: input, targets: [0])) { error in
                XCTAssertTrue("\(error)".contains("larger than the window"), "\(error)")
            }
        }
    }
}

/// Loads a case of `Tests/Fixtures/perturbation/manifest.json`.
enum PerturbationGolden {
    struct Manifest: Decodable {
        struct Case: Decodable {
            struct Input: Decodable {
                let key: String
                let shape: [Int]
                /// A committed tensor (under Tests/Fixtures) used instead of the deterministic input.
                let file: String?
            }
            struct Weights: Decodable {
                /// The deterministic weights of key `key_prefix + key` (see `stateDict(_:classes:keyPrefix:)`).
                let key_prefix: String?
            }
            struct Float64Reference: Decodable {
                /// Captum's same call in float64, a `<f8` `.npy`.
                let output: String
                /// Captum float32's relative L2 distance to it.
                let captum_float32_rel_l2: Double
            }
            let name: String
            let arch: String
            let num_classes: Int
            let input: Input
            let weights: Weights?
            let options: Options?
            let targets: [Int]
            let output: String
            let float64: Float64Reference?
        }
        struct Options: Decodable {
            let window: [Int]?
            let stride: [Int]?
            let baseline: Float?
        }
        let cases: [Case]
    }

    static let manifest: Manifest = {
        let data = try! Data(contentsOf: fixtureURL("perturbation/manifest.json"))
        return try! JSONDecoder().decode(Manifest.self, from: data)
    }()

    nonisolated(unsafe) static var networks: [String: ResNet] = [:]
    static let lock = NSLock()

    static func goldenCase(_ name: String) throws -> Manifest.Case {
        try XCTUnwrap(manifest.cases.first { $0.name == name }, name)
    }

    static func load(_ name: String) throws -> (ResNet, Tensor, [Int], Tensor) {
        let goldenCase = try goldenCase(name)
        let prefix = goldenCase.weights?.key_prefix ?? ""
        let network = try self.network(goldenCase.arch, classes: goldenCase.num_classes, keyPrefix: prefix)
        let input = try goldenCase.input.file.map { try NPY.readFloat32(fixtureURL($0)) }
            ?? DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
        XCTAssertEqual(input.shape, goldenCase.input.shape, name)
        let expected = try NPY.readFloat32(fixtureURL("perturbation/\(goldenCase.output)"))
        return (network, input, goldenCase.targets, expected)
    }

    /// The deterministic `arch` with `classes` classes (keys prefixed by `keyPrefix`), built once.
    static func network(_ arch: String, classes: Int, keyPrefix: String = "") throws -> ResNet {
        let key = "\(keyPrefix)\(arch)-\(classes)"
        lock.lock()
        defer { lock.unlock() }
        if networks[key] == nil {
            let architecture = try XCTUnwrap(ResNetArchitecture.named(arch))
            networks[key] = try ResNet(stateDict: stateDict(architecture, classes: classes, keyPrefix: keyPrefix))
        }
        return networks[key]!
    }

    /// `DeterministicWeights.stateDict` with every tensor's values those of key `keyPrefix + key`
    /// (`tools/golden_perturbation.py`'s `prefixed_deterministic_model`): other weights than the
    /// other tests'. A prefix starting with "layer" keeps the per-key rules of the formula.
    static func stateDict(_ architecture: ResNetArchitecture, classes: Int, keyPrefix: String) -> StateDict {
        guard !keyPrefix.isEmpty else { return DeterministicWeights.stateDict(architecture, classes: classes) }
        var tensors: [String: Tensor] = [:]
        for (key, shape) in architecture.parameterShapes(classes: classes) {
            tensors[key] = DeterministicWeights.parameter(key: keyPrefix + key, shape: shape)
        }
        return StateDict(tensors)
    }

    /// Captum's float64 attributions for a case that has them, and Captum float32's distance to them.
    static func float64Reference(_ name: String) throws -> (values: [Double], captumFloat32Distance: Double) {
        let reference = try XCTUnwrap(try goldenCase(name).float64, "\(name) has no float64 reference")
        return (try readFloat64NPY(fixtureURL("perturbation/\(reference.output)")), reference.captum_float32_rel_l2)
    }

    /// The values of a little-endian float64 (`<f8`), C-order `.npy` file (Elucidate's NPY reads
    /// float32 and int32 only).
    static func readFloat64NPY(_ url: URL) throws -> [Double] {
        let data = try Data(contentsOf: url)
        XCTAssertEqual(data.prefix(6), Data([0x93] + Array("NUMPY".utf8)), url.path)
        let major = data[6]
        let lengthBytes = major == 1 ? 2 : 4
        let headerLength = data[8..<(8 + lengthBytes)].reversed().reduce(0) { $0 << 8 | Int($1) }
        let start = 8 + lengthBytes + headerLength
        let header = String(decoding: data[(8 + lengthBytes)..<start], as: UTF8.self)
        guard header.contains("'descr': '<f8'"), header.contains("'fortran_order': False") else {
            throw ElucidateError(.unsupported, "expected a C-order <f8 array, header \(header)", path: url.path)
        }
        let count = (data.count - start) / 8
        return data[start...].withUnsafeBytes { raw in
            (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }
}
