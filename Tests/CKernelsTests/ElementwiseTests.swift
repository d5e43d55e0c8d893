import CKernels
import TestSupport
import XCTest

final class ElementwiseTests: KernelTestCase {
    private func specials() -> [Float] { [.nan, -.nan, .infinity, -.infinity, 0, -0.0, 1e-40, -1e-40, 3, -3] }

    func testReluAddMulMatchScalarBitExactly() {
        var rng = SeededGenerator(seed: 10)
        for count in tailSizes() {
            var a = rng.spicyFloats(count), b = rng.spicyFloats(count)
            for (i, v) in specials().enumerated() where i < count { a[(i * 7) % count] = v; b[(i * 5) % count] = v }
            compareWithScalar({
                var y = [Float](repeating: 7, count: count)
                XCTAssertEqual(ek_relu_f32(Int64(count), a, &y, 0, 1), EK_OK)
                return y
            }, check: { ref, got, isa in assertBitEqual(got, ref, "relu count \(count) isa \(isa.rawValue)") })
            for act in [EK_ACT_NONE, EK_ACT_RELU] {
                compareWithScalar({
                    var y = [Float](repeating: 7, count: count)
                    XCTAssertEqual(ek_add_f32(Int64(count), a, b, &y, act, 0, 1), EK_OK)
                    return y
                }, check: { ref, got, isa in assertBitEqual(got, ref, "add count \(count) act \(act.rawValue) isa \(isa.rawValue)") })
            }
            compareWithScalar({
                var y = [Float](repeating: 7, count: count)
                XCTAssertEqual(ek_mul_f32(Int64(count), a, b, &y, 0, 1), EK_OK)
                return y
            }, check: { ref, got, isa in assertBitEqual(got, ref, "mul count \(count) isa \(isa.rawValue)") })
        }
    }

    func testDefinitionsOnEveryISA() {
        var rng = SeededGenerator(seed: 11)
        let count = 301
        let a = rng.floats(count, in: -3..<3) + [.nan, -0.0, .infinity], b = rng.floats(count + 3, in: -3..<3)
        let n = Int64(a.count)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            var y = [Float](repeating: 0, count: a.count)
            XCTAssertEqual(ek_relu_f32(n, a, &y, 0, 1), EK_OK)
            XCTAssertTrue(y[count].isNaN, "ReLU propagates NaN")
            XCTAssertEqual(y[count + 2], .infinity)
            assertClose(Array(y[..<count]), a[..<count].map { max($0, 0) }, rtol: 0, atol: 0)
            XCTAssertEqual(ek_add_f32(n, a, b, &y, EK_ACT_RELU, 0, 1), EK_OK)
            assertClose(Array(y[..<count]), (0..<count).map { max(a[$0] + b[$0], 0) }, rtol: 0, atol: 0)
            XCTAssertEqual(ek_add_f32(n, a, b, &y, EK_ACT_NONE, 0, 1), EK_OK)
            assertClose(Array(y[..<count]), (0..<count).map { a[$0] + b[$0] }, rtol: 0, atol: 0)
            XCTAssertEqual(ek_mul_f32(n, a, b, &y, 0, 1), EK_OK)
            assertClose(Array(y[..<count]), (0..<count).map { a[$0] * b[$0] }, rtol: 0, atol: 0)
        }
    }

    func testOutputsMayAliasInputs() {
        var rng = SeededGenerator(seed: 12)
        let a0 = rng.floats(77), b = rng.floats(77)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            var a = a0
            a.withUnsafeMutableBufferPointer { p in
                XCTAssertEqual(ek_add_f32(77, p.baseAddress, b, p.baseAddress, EK_ACT_RELU, 0, 1), EK_OK)
            }
            assertClose(a, (0..<77).map { max(a0[$0] + b[$0], 0) }, rtol: 0, atol: 0)
            a = a0
            a.withUnsafeMutableBufferPointer { p in
                XCTAssertEqual(ek_mul_f32(77, p.baseAddress, p.baseAddress, p.baseAddress, 0, 1), EK_OK)
            }
            assertClose(a, a0.map { $0 * $0 }, rtol: 0, atol: 0)
            a = a0
            a.withUnsafeMutableBufferPointer { p in
                XCTAssertEqual(ek_relu_f32(77, p.baseAddress, p.baseAddress, 0, 1), EK_OK)
            }
            assertClose(a, a0.map { max($0, 0) }, rtol: 0, atol: 0)
        }
    }

    func testSharesCoverEverythingOnce() {
        var rng = SeededGenerator(seed: 13)
        for count in [1, 15, 16, 17, 100, 1000, 4099] {
            let a = rng.floats(count), b = rng.floats(count)
            for nth in [1, 2, 3, 4, 7, 64] {
                // Each element is doubled exactly once: a share run twice or skipped shows up.
                var y = a
                y.withUnsafeMutableBufferPointer { p in
                    for ith in 0..<nth {
                        XCTAssertEqual(ek_add_f32(Int64(count), p.baseAddress, p.baseAddress, p.baseAddress,
                                                  EK_ACT_NONE, Int32(ith), Int32(nth)), EK_OK)
                    }
                }
                assertBitEqual(y, a.map { $0 + $0 }, "add count \(count) nth \(nth)")
                var r = [Float](repeating: .nan, count: count), m = r
                for ith in 0..<nth {
                    XCTAssertEqual(ek_relu_f32(Int64(count), a, &r, Int32(ith), Int32(nth)), EK_OK)
                    XCTAssertEqual(ek_mul_f32(Int64(count), a, b, &m, Int32(ith), Int32(nth)), EK_OK)
                }
                assertBitEqual(r, a.map { max($0, 0) }, "relu count \(count) nth \(nth)")
                assertBitEqual(m, (0..<count).map { a[$0] * b[$0] }, "mul count \(count) nth \(nth)")
            }
        }
    }

    func testConcatChannels() {
        var rng = SeededGenerator(seed: 14)
        let (n, hw) = (3, 5)
        let channels: [Int64] = [2, 1, 4]
        let inputs = channels.map { rng.floats(n * Int($0) * hw) }
        let total = Int(channels.reduce(0, +))
        var expected = [Float]()
        for img in 0..<n {
            for (i, c) in channels.enumerated() {
                let plane = Int(c) * hw
                expected += inputs[i][(img * plane)..<((img + 1) * plane)]
            }
        }
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            var y = [Float](repeating: .nan, count: n * total * hw)
            inputs[0].withUnsafeBufferPointer { p0 in
                inputs[1].withUnsafeBufferPointer { p1 in
                    inputs[2].withUnsafeBufferPointer { p2 in
                        let pointers: [UnsafePointer<Float>?] = [p0.baseAddress, p1.baseAddress, p2.baseAddress]
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, pointers, channels, &y), EK_OK)
                        let withNil: [UnsafePointer<Float>?] = [p0.baseAddress, nil, p2.baseAddress]
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, withNil, channels, &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, pointers, [2, 0, 4], &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(0, Int64(hw), 3, pointers, channels, &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), 0, 3, pointers, channels, &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 0, pointers, channels, &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, nil, channels, &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, pointers, nil, &y), EK_ERR_INVALID_ARGUMENT)
                        XCTAssertEqual(ek_concat_channels_f32(Int64(n), Int64(hw), 3, pointers, channels, nil), EK_ERR_INVALID_ARGUMENT)
                    }
                }
            }
            assertBitEqual(y, expected, "concat on \(isa.rawValue)")
        }
    }

    func testRejectsBadArguments() {
        let a: [Float] = [1, 2, 3]
        var y: [Float] = [0, 0, 0]
        XCTAssertEqual(ek_relu_f32(0, a, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_f32(-3, a, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_f32(3, nil, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_f32(3, a, nil, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_f32(3, a, &y, 1, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_f32(3, a, &y, 0, 0), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_relu_f32(3, a, &y, -1, 2), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_add_f32(3, a, nil, &y, EK_ACT_NONE, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_add_f32(3, a, a, &y, ek_activation(rawValue: 3), 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_add_f32(3, a, a, &y, EK_ACT_NONE, 2, 2), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_mul_f32(3, nil, a, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_mul_f32(0, a, a, &y, 0, 1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(ek_mul_f32(3, a, a, &y, 0, -1), EK_ERR_INVALID_ARGUMENT)
        XCTAssertEqual(y, [0, 0, 0], "a rejected call writes nothing")
    }
}
