import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate explain saliency` and `explain occlusion` under `ELUCIDATE_ISA=scalar` and
/// `=avx2`, where the whole process computes as on such a CPU (Elucidate's kernels and
/// OpenBLAS's: Nehalem without fused multiply-add, Haswell), against Captum's goldens for the
/// deterministic ResNet34 (`r34_saliency` in Tests/Fixtures/attributions, `r34_occlusion` with
/// its float64 reference in Tests/Fixtures/perturbation). The tolerances are those of
/// `OcclusionAccuracyTests` and `SaliencyInstructionSetTests` (AttributionTests), which explain them.
final class InstructionSetParityCommandTests: XCTestCase {
    nonisolated(unsafe) static var folder: URL!
    static let target = 264  // the goldens' target: the class the model predicts

    /// One model file and one input for every test (writing ResNet34's 87 MB takes a while).
    override class func setUp() {
        super.setUp()
        do {
            folder = try makeTemporaryDirectory("elucidate-isa-parity")
            let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet34")!, classes: 1000)
            try SafetensorsWriter.write(stateDict.tensors, metadata: [:], to: folder.appendingPathComponent("r34.safetensors"))
            try NPY.write(DeterministicWeights.input(key: "input", shape: [1, 3, 224, 224]),
                          to: folder.appendingPathComponent("x.npy"))
        } catch {
            folder = nil
        }
    }

    override class func tearDown() {
        if let folder { try? FileManager.default.removeItem(at: folder) }
        super.tearDown()
    }

    private func path(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }

    /// Runs `elucidate explain method` at `level` and returns the attributions it wrote.
    private func explain(_ method: String, _ level: InstructionSet, _ extra: [String]) throws -> Tensor {
        guard Self.folder != nil else { throw XCTSkip("the model file could not be written") }
        guard level <= Runtime.detectedInstructionSet else {
            throw XCTSkip("this CPU lacks \(level) (it has \(Runtime.detectedInstructionSet)): not checked on this machine")
        }
        let output = path("\(method)-\(level.name).npy")
        let result = try runElucidate(["explain", method, "--model", path("r34.safetensors"), "--input-tensor", path("x.npy"),
                                       "--target", String(Self.target), "--attributions", output, "--quiet"] + extra,
                                      environment: ["ELUCIDATE_ISA": level.name], unsetting: ["OPENBLAS_CORETYPE"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try NPY.readFloat32(URL(fileURLWithPath: output))
    }

    private func checkSaliency(_ level: InstructionSet) throws {
        let values = try explain("saliency", level, [])
        let expected = try NPY.readFloat32(fixtureURL("attributions/r34_saliency.npy"))
        XCTAssertEqual(values.shape, expected.shape)
        // Outside the 27×27 patch where they differ most (a ReLU flipped by rounding changes
        // the saliency over its receptive field; see SaliencyInstructionSetTests).
        let (whole, outside) = relativeL2ErrorOutsideWorstPatch(values, expected, patch: 27)
        let report = "saliency, ELUCIDATE_ISA=\(level.name): relative L2 to Captum \(whole), outside the worst 27×27 patch \(outside)"
        print(report)
        XCTAssertLessThanOrEqual(outside, 1e-3, report)
    }

    private func checkOcclusion(_ level: InstructionSet) throws {
        let values = try explain("occlusion", level, ["--window", "3,45,45", "--stride", "3,40,40"]).scalars
        let captum = try NPY.readFloat32(fixtureURL("perturbation/r34_occlusion.npy")).scalars
        let manifest = try goldenCases("perturbation/manifest.json", as: OcclusionCase.self)
        let reference = try XCTUnwrap(manifest.first { $0.name == "r34_occlusion" }?.float64)
        let float64 = try Self.readFloat64NPY(fixtureURL("perturbation/\(reference.output)"))
        let toCaptum = relativeL2Error(values, captum)
        let toFloat64 = Self.distance(values, float64)
        let report = "occlusion, ELUCIDATE_ISA=\(level.name): relative L2 to Captum float32 \(toCaptum), to Captum float64 "
            + "\(toFloat64); Captum float32 to float64 \(reference.captum_float32_rel_l2)"
        print(report)
        XCTAssertLessThanOrEqual(toCaptum, 1e-3, report)
        // OcclusionAccuracyTests.float64Factor (45), times √2 at the scalar level: OpenBLAS's
        // Nehalem kernels round twice per term (no fused multiply-add).
        let factor = level == .scalar ? 64.0 : 45.0
        XCTAssertLessThanOrEqual(toFloat64, factor * reference.captum_float32_rel_l2, report)
    }

    func testSaliencyScalar() throws { try checkSaliency(.scalar) }
    func testSaliencyAVX2() throws { try checkSaliency(.avx2) }
    func testOcclusionScalar() throws { try checkOcclusion(.scalar) }
    func testOcclusionAVX2() throws { try checkOcclusion(.avx2) }

    // MARK: - Helpers

    struct OcclusionCase: Decodable {
        struct Float64Reference: Decodable {
            let output: String
            let captum_float32_rel_l2: Double
        }
        let name: String
        let float64: Float64Reference?
    }

    static func distance(_ actual: [Float], _ expected: [Double]) -> Double {
        var difference = 0.0, norm = 0.0
        for (a, e) in zip(actual, expected) {
            difference += (Double(a) - e) * (Double(a) - e)
            norm += e * e
        }
        return (difference / norm).squareRoot()
    }

    /// The values of a little-endian float64, C-order `.npy` file.
    static func readFloat64NPY(_ url: URL) throws -> [Double] {
        let data = try Data(contentsOf: url)
        let lengthBytes = data[6] == 1 ? 2 : 4
        let headerLength = data[8..<(8 + lengthBytes)].reversed().reduce(0) { $0 << 8 | Int($1) }
        let start = 8 + lengthBytes + headerLength
        let header = String(decoding: data[(8 + lengthBytes)..<start], as: UTF8.self)
        XCTAssertTrue(header.contains("'descr': '<f8'") && header.contains("'fortran_order': False"), header)
        return data[start...].withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }

}
