/// Finding NaN and infinity in tensors: weights, inputs, baselines and results are checked
/// once each (one pass), so a non-finite number is one clear error naming the tensor and its
/// first bad element instead of NaN attributions or `nan%` probabilities.
extension Tensor {
    /// The flat (row-major) index of the first NaN or ±infinity, or nil when every element is finite.
    public func firstNonFiniteIndex() -> Int? {
        withUnsafeBufferPointer { values -> Int? in
            values.withMemoryRebound(to: UInt32.self) { bits -> Int? in
                let chunk = 4096
                var start = 0
                while start < bits.count {
                    let end = min(bits.count, start + chunk)
                    // An exponent of all ones (NaN, ±inf) carries into bit 31 when 1 is added
                    // to it; an integer OR over the chunk vectorises, a branch per element does not.
                    var flag: UInt32 = 0
                    for i in start..<end { flag |= (bits[i] & 0x7F80_0000) &+ 0x0080_0000 }
                    if flag & 0x8000_0000 != 0 {
                        for i in start..<end where (bits[i] & 0x7F80_0000) == 0x7F80_0000 { return i }
                    }
                    start = end
                }
                return nil
            }
        }
    }

    /// The coordinates of the flat index `index`: `[n, c, y, x]` for a rank-4 tensor.
    public func coordinates(ofFlatIndex index: Int) -> [Int] {
        var rest = index
        var result = [Int](repeating: 0, count: shape.count)
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
            result[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return result
    }

    /// Describes the first non-finite element, e.g. "nan at element [0, 2, 5, 7]", or nil.
    public func firstNonFiniteDescription() -> String? {
        guard let index = firstNonFiniteIndex() else { return nil }
        let value = withUnsafeBufferPointer { $0[index] }
        let name = value.isNaN ? "nan" : value > 0 ? "inf" : "-inf"
        let place = rank == 1 ? "element \(index)" : "element [\(coordinates(ofFlatIndex: index).map(String.init).joined(separator: ", "))]"
        return "\(name) at \(place)"
    }

    /// Throws when an element is NaN or infinite: "non-finite value in `what`: nan at element
    /// [0, 2, 5, 7]; `advice`".
    public func requireFinite(_ what: String, kind: ElucidateError.Kind = .invalidArgument,
                              advice: String = "every value must be a finite number") throws(ElucidateError) {
        if let bad = firstNonFiniteDescription() {
            throw ElucidateError(kind, "non-finite value in \(what): \(bad); \(advice)")
        }
    }
}
