import Elucidate
import Foundation
import TestSupport
import XCTest

/// Forward parity with PyTorch on the golden cases of `tools/golden.py`.
final class ResNetParityTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let arch: String
        let num_classes: Int
        let input: GoldenInput
        let output: String
        let torch_f32_vs_f64_rel_l2: Double
    }

    func testEveryGoldenCaseMatchesPyTorch() throws {
        let cases = try goldenCases("golden/manifest.json", as: Case.self)
        XCTAssertGreaterThanOrEqual(cases.count, 5)
        for goldenCase in cases {
            let arch = try XCTUnwrap(ResNetArchitecture.named(goldenCase.arch))
            let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: goldenCase.num_classes))
            XCTAssertEqual(network.architecture, arch)
            let input = DeterministicWeights.input(key: goldenCase.input.key, shape: goldenCase.input.shape)
            let logits = try network.logits(input)
            let expected = try NPY.readFloat32(fixtureURL("golden/\(goldenCase.output)"))
            XCTAssertEqual(logits.shape, expected.shape, goldenCase.name)
            let error = relativeL2Error(logits.scalars, expected.scalars)
            XCTAssertLessThanOrEqual(error, 1e-4, "\(goldenCase.name): relative L2 error \(error)")
            print("\(goldenCase.name): relative L2 error \(error) (PyTorch float32 vs float64: \(goldenCase.torch_f32_vs_f64_rel_l2))")
        }
    }

    /// The loader stays correct whichever OpenBLAS kernels were chosen: the BLAS path in use
    /// is reported, and the ResNet34 parity above ran on it.
    func testBLASPathIsReported() {
        let blas = Runtime.blas
        XCTAssertTrue(blas.loaded, blas.error ?? "")
        XCTAssertNotNil(blas.coreName)
    }

    func testThreadCountDoesNotChangeResults() throws {
        let arch = ResNetArchitecture.named("resnet18")!
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(arch, classes: 10))
        let input = DeterministicWeights.input(shape: [2, 3, 40, 56])
        let before = Runtime.threadCount
        defer { Runtime.setThreadCount(before) }
        Runtime.setThreadCount(1)
        let single = try network.logits(input)
        Runtime.setThreadCount(2)
        let double = try network.logits(input)
        assertClose(double, single, rtol: 1e-5, atol: 1e-5)
    }
}
