extension Tensor {
    /// Rows `range` of the outermost axis, copied: `[range.count, …]`.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) out of \(shape)")
        if range == 0..<shape[0] { return self }
        let rowSize = count / max(shape[0], 1)
        var result = Tensor(uninitialized: [range.count] + shape.dropFirst())
        result.withUnsafeMutableBufferPointer { out in
            out.baseAddress!.update(from: storage.pointer + range.lowerBound * rowSize, count: range.count * rowSize)
        }
        return result
    }

    /// Each row repeated `times` times in place: rows a, b → a, a, b, b (times = 2).
    public func repeatingRows(_ times: Int) -> Tensor {
        precondition(times >= 1, "repeat count must be positive")
        let rows = shape[0], rowSize = count / max(rows, 1)
        var result = Tensor(uninitialized: [rows * times] + shape.dropFirst())
        result.withUnsafeMutableBufferPointer { out in
            for row in 0..<rows {
                for copy in 0..<times {
                    (out.baseAddress! + (row * times + copy) * rowSize).update(from: storage.pointer + row * rowSize, count: rowSize)
                }
            }
        }
        return result
    }

    /// The rows at `indices`, in that order (an index may repeat): `[indices.count, …]`.
    public func gatheringRows(_ indices: [Int]) -> Tensor {
        let rows = shape[0], rowSize = count / max(rows, 1)
        precondition(indices.allSatisfy { $0 >= 0 && $0 < rows }, "row index out of \(shape)")
        var result = Tensor(uninitialized: [indices.count] + shape.dropFirst())
        result.withUnsafeMutableBufferPointer { out in
            for (position, row) in indices.enumerated() {
                (out.baseAddress! + position * rowSize).update(from: storage.pointer + row * rowSize, count: rowSize)
            }
        }
        return result
    }

    /// Stacks tensors of equal trailing shape along the outermost axis.
    public static func concatenatingRows(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "nothing to concatenate")
        let tail = Array(parts[0].shape.dropFirst())
        precondition(parts.allSatisfy { Array($0.shape.dropFirst()) == tail }, "row shapes differ")
        var result = Tensor(uninitialized: [parts.reduce(0) { $0 + $1.shape[0] }] + tail)
        result.withUnsafeMutableBufferPointer { out in
            var offset = 0
            for part in parts {
                (out.baseAddress! + offset).update(from: part.storage.pointer, count: part.count)
                offset += part.count
            }
        }
        return result
    }

    /// Applies `transform` to every element, in a new tensor.
    public func map(_ transform: (Float) -> Float) -> Tensor {
        var result = Tensor(uninitialized: shape)
        result.withUnsafeMutableBufferPointer { out in
            for i in 0..<count { out[i] = transform(storage.pointer[i]) }
        }
        return result
    }

    /// `transform(self[i], other[i])` for every element; shapes must match.
    public func zipMap(_ other: Tensor, _ transform: (Float, Float) -> Float) -> Tensor {
        precondition(shape == other.shape, "shapes \(shape) and \(other.shape) differ")
        var result = Tensor(uninitialized: shape)
        result.withUnsafeMutableBufferPointer { out in
            for i in 0..<count { out[i] = transform(storage.pointer[i], other.storage.pointer[i]) }
        }
        return result
    }

    /// Per row of the outermost axis, the sum of its elements (in Double, returned as Float).
    public func rowSums() -> [Float] {
        let rows = shape[0], rowSize = count / max(rows, 1)
        return (0..<rows).map { row in
            var sum = 0.0
            for i in 0..<rowSize { sum += Double(storage.pointer[row * rowSize + i]) }
            return Float(sum)
        }
    }
}
