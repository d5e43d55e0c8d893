import CKernels
import TestSupport
import XCTest

/// `ek_basis_sum_f32`: its definition (in double, per element, against the kernel at every
/// level), bit equality of every level with the scalar reference, share splits, boxes at the
/// plane's edges, tails of every width, and rejected boxes.
final class BasisSumTests: KernelTestCase {
    struct Case {
        var copies: Int, channels: Int, height: Int, width: Int
        var boxes: [(y0: Int, height: Int, x0: Int, width: Int)]
        var coefficients: [Float]
        var values: [[Float]]
        var bias: [Float]?
    }

    private func makeCase(_ rng: inout SeededGenerator, copies: Int, channels: Int, height: Int, width: Int,
                          bias: Bool) -> Case {
        var boxes: [(y0: Int, height: Int, x0: Int, width: Int)] = [(0, height, 0, width), (0, 0, 0, 0)]
        for _ in 0..<5 {
            let y0 = rng.int(0...(height - 1)), x0 = rng.int(0...(width - 1))
            boxes.append((y0, rng.int(1...(height - y0)), x0, rng.int(1...(width - x0))))
        }
        boxes.append((height - 1, 1, width - 1, 1))
        var coefficients = rng.floats(copies * boxes.count, in: -1..<1)
        for i in stride(from: 0, to: coefficients.count, by: 3) { coefficients[i] = 0 }  // skipped terms
        let values = boxes.map { rng.floats(channels * $0.height * $0.width, in: -2..<2) }
        return Case(copies: copies, channels: channels, height: height, width: width, boxes: boxes,
                    coefficients: coefficients, values: values, bias: bias ? rng.floats(channels, in: -1..<1) : nil)
    }

    private func run(_ c: Case, activation: ek_activation, shares: Int = 1) -> [Float] {
        var y = [Float](repeating: .nan, count: c.copies * c.channels * c.height * c.width)
        withPointers(c.values) { pointers in
            let boxes = c.boxes.enumerated().map { index, box in
                ek_basis_box(y0: Int64(box.y0), height: Int64(box.height), x0: Int64(box.x0), width: Int64(box.width),
                             values: pointers[index])
            }
            withOptionalPointer(c.bias) { bias in
                for share in 0..<shares {
                    var p = ek_basis_sum_params(copies: Int64(c.copies), bases: Int64(c.boxes.count), channels: Int64(c.channels),
                                                height: Int64(c.height), width: Int64(c.width), coefficients: c.coefficients,
                                                boxes: boxes, bias: bias, activation: activation,
                                                ith: Int32(share), nth: Int32(shares))
                    XCTAssertEqual(ek_basis_sum_f32(&p, &y), EK_OK)
                }
            }
        }
        return y
    }

    private func withPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>?]) -> R) -> R {
        let copies = arrays.map { array -> UnsafeMutablePointer<Float>? in
            guard !array.isEmpty else { return nil }
            let p = UnsafeMutablePointer<Float>.allocate(capacity: array.count)
            p.initialize(from: array, count: array.count)
            return p
        }
        defer { copies.forEach { $0?.deallocate() } }
        return body(copies.map { $0.map { UnsafePointer($0) } })
    }

    func testEveryLevelMatchesTheScalarReferenceBitForBit() {
        var rng = SeededGenerator(seed: 41)
        for width in [1, 7, 8, 9, 16, 17, 31, 40] {
            let c = makeCase(&rng, copies: 3, channels: 4, height: 5, width: width, bias: width % 2 == 0)
            for activation in [EK_ACT_NONE, EK_ACT_RELU] {
                compareWithScalar({ run(c, activation: activation) }, check: { ref, got, isa in
                    assertBitEqual(got, ref, "width \(width) act \(activation.rawValue) isa \(isa.rawValue)")
                })
                assertBitEqual(run(c, activation: activation, shares: 3), run(c, activation: activation), "shares")
            }
        }
    }

    /// Each element against Σ_b c_b v_b + bias in double: at most B fused multiply-adds and one
    /// addition, each rounding once, so |error| ≤ γ_{B+1} (Σ_b |c_b v_b| + |bias|).
    func testDefinition() {
        var rng = SeededGenerator(seed: 42)
        let c = makeCase(&rng, copies: 2, channels: 3, height: 6, width: 11, bias: true)
        let eps = Double(Float.ulpOfOne) / 2
        let gamma = Double(c.boxes.count + 1) * eps / (1 - Double(c.boxes.count + 1) * eps)
        for isa in supportedISAs() {
            _ = ek_set_isa(isa)
            let y = run(c, activation: EK_ACT_NONE)
            for copy in 0..<c.copies {
                for k in 0..<c.channels {
                    for row in 0..<c.height {
                        for x in 0..<c.width {
                            var sum = Double(c.bias![k]), magnitude = abs(Double(c.bias![k]))
                            for (b, box) in c.boxes.enumerated()
                            where row >= box.y0 && row < box.y0 + box.height && x >= box.x0 && x < box.x0 + box.width {
                                let term = Double(c.coefficients[copy * c.boxes.count + b])
                                    * Double(c.values[b][(k * box.height + row - box.y0) * box.width + x - box.x0])
                                sum += term
                                magnitude += abs(term)
                            }
                            let got = Double(y[((copy * c.channels + k) * c.height + row) * c.width + x])
                            XCTAssertLessThanOrEqual(abs(got - sum), gamma * magnitude, "isa \(isa.rawValue) at \(copy),\(k),\(row),\(x)")
                        }
                    }
                }
            }
        }
    }

    func testBoxesOutsideThePlaneAreRejectedBeforeWriting() {
        var rng = SeededGenerator(seed: 43)
        for bad in [(y0: 4, height: 3, x0: 0, width: 2), (y0: 0, height: 1, x0: 9, width: 3), (y0: -1, height: 1, x0: 0, width: 1)] {
            var c = makeCase(&rng, copies: 1, channels: 2, height: 6, width: 10, bias: false)
            c.boxes.append(bad)
            c.values.append([Float](repeating: 1, count: 2 * bad.height * bad.width))
            c.coefficients = [Float](repeating: 0.5, count: c.boxes.count)
            var y = [Float](repeating: 7, count: 2 * 6 * 10)
            withPointers(c.values) { pointers in
                let boxes = c.boxes.enumerated().map { index, box in
                    ek_basis_box(y0: Int64(box.y0), height: Int64(box.height), x0: Int64(box.x0), width: Int64(box.width),
                                 values: pointers[index])
                }
                var p = ek_basis_sum_params(copies: 1, bases: Int64(c.boxes.count), channels: 2, height: 6, width: 10,
                                            coefficients: c.coefficients, boxes: boxes, bias: nil, activation: EK_ACT_NONE,
                                            ith: 0, nth: 1)
                XCTAssertEqual(ek_basis_sum_f32(&p, &y), EK_ERR_INVALID_ARGUMENT, "\(bad)")
            }
            XCTAssertEqual(y, [Float](repeating: 7, count: 2 * 6 * 10))
        }
    }
}
