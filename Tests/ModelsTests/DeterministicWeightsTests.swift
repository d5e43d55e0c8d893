import XCTest
import Elucidate
import TestSupport

/// `DeterministicWeights` must match `tools/resnet.py` (numpy) bit for bit: the golden
/// fixtures in Tests/Fixtures/golden were computed from the Python side's weights.
/// The constants below were printed by `deterministic_parameter` / `deterministic_input`.
final class DeterministicWeightsTests: XCTestCase {
    /// Σ bits[i] · (i + 1) mod 2^64 over the float32 bit patterns, a cheap whole-tensor check.
    private func checksum(_ tensor: Tensor) -> UInt64 {
        tensor.withUnsafeBufferPointer { values in
            var sum: UInt64 = 0
            for (i, value) in values.enumerated() {
                sum &+= UInt64(value.bitPattern) &* UInt64(i + 1)
            }
            return sum
        }
    }

    func testFNV1a() {
        XCTAssertEqual(DeterministicWeights.fnv1a32(""), 0x811C_9DC5)
        XCTAssertEqual(DeterministicWeights.fnv1a32("conv1.weight"), 0xBDCE_C494)
        XCTAssertEqual(DeterministicWeights.fnv1a32("café.weight"), 0x2764_7519)  // UTF-8 bytes
    }

    func testParameterElementsMatchPython() {
        // (key, shape, [(flat index, float32 bits)])
        let cases: [(String, [Int], [(Int, UInt32)])] = [
            ("conv1.weight", [64, 3, 7, 7], [(0, 0x3E3C_0508), (1, 0xBD26_85DE), (4242, 0xBE0D_D03E), (9407, 0xBD6A_CECE)]),
            ("fc.weight", [1000, 512], [(0, 0xBD44_7277), (12345, 0x3CA8_F692), (511_999, 0xBC80_530C)]),
            ("fc.bias", [1000], [(0, 0x3C3E_6E1C), (999, 0xBD47_3C79)]),
            ("bn1.weight", [64], [(0, 0x3F57_BECD), (63, 0x3F82_7DA6)]),
            ("bn1.running_var", [64], [(0, 0x3F0D_C997), (5, 0x3FB7_4152)]),
            ("bn1.running_mean", [64], [(0, 0x3D83_9CFC), (7, 0x3ADA_4239)]),
            ("layer4.1.conv2.weight", [512, 512, 3, 3], [(1_000_000, 0xBCFF_918B), (2_359_295, 0x3ADF_F60A)]),
            ("layer3.0.downsample.1.bias", [256], [(17, 0xBD31_C823)]),
            // Batch norms closing a residual branch are damped (gamma near 0.3).
            ("layer1.0.bn2.weight", [64], [(0, 0x3E82_0B19), (63, 0x3E89_1075)]),
            ("layer2.0.downsample.1.weight", [128], [(0, 0x3E89_A561)]),
            ("café.weight", [3, 4], [(0, 0x3E8F_86CB), (11, 0x3DC7_85DF)]),
        ]
        for (key, shape, expected) in cases {
            let tensor = DeterministicWeights.parameter(key: key, shape: shape)
            XCTAssertEqual(tensor.shape, shape)
            tensor.withUnsafeBufferPointer { values in
                for (index, bits) in expected {
                    XCTAssertEqual(values[index].bitPattern, bits,
                                   "\(key)[\(index)] = \(values[index]), Python has \(Float(bitPattern: bits))")
                }
            }
        }
    }

    func testWholeTensorChecksumsMatchPython() {
        let cases: [(String, [Int], UInt64)] = [
            ("conv1.weight", [64, 3, 7, 7], 0x014C_44D3_70F6_B13A),
            ("fc.weight", [1000, 512], 0xE34C_5256_C645_74FA),
            ("layer4.1.conv2.weight", [512, 512, 3, 3], 0xF773_1BDE_5954_BBBD),
            ("bn1.weight", [64], 0x0000_0203_A780_5540),
            ("bn1.running_var", [64], 0x0000_0203_6922_F01E),
            ("fc.bias", [1000], 0x0003_D7BD_4A7E_EEC6),
        ]
        for (key, shape, expected) in cases {
            XCTAssertEqual(checksum(DeterministicWeights.parameter(key: key, shape: shape)), expected, key)
        }
    }

    func testInputMatchesPython() {
        let input = DeterministicWeights.input(shape: [2, 3, 224, 224])
        let expected: [(Int, UInt32)] = [(0, 0x3F99_1ADF), (1, 0x3F3D_9E51), (150_527, 0xBF69_3E27), (301_055, 0x3FFC_98B1)]
        input.withUnsafeBufferPointer { values in
            for (index, bits) in expected {
                XCTAssertEqual(values[index].bitPattern, bits, "input[\(index)]")
            }
        }
        XCTAssertEqual(checksum(input), 0x3E34_9F42_74AC_0814)

        let other = DeterministicWeights.input(key: "other", shape: [5])
        XCTAssertEqual(other.scalars.map(\.bitPattern), [0x3F9D_7E03, 0xBFB9_AAF6, 0x3FB4_029B, 0x3EB1_DAD1, 0xBDB4_7E0E])
    }
}
