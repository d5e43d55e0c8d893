/// ElucidateCore: the bottom layer of the engine. `Tensor` and its arithmetic,
/// `ElucidateError`, finite-value checks, and the runtime (thread pool, BLAS loading,
/// instruction-set choice, scratch buffers). Depends only on CKernels; every other layer
/// depends on it.

import Foundation

/// Owns a 64-byte-aligned float32 buffer. Shared between tensors until one mutates it
/// (copy on write, see `Tensor.withUnsafeMutableBufferPointer`).
///
/// Not public API: users reach the elements through `Tensor`'s scoped accessors. The engine's
/// own layers (package access) read through `pointer`, and write through it only into a
/// tensor they have just created (uniquely owned) or inside `withUnsafeMutableBufferPointer`:
/// writing into storage another tensor shares would change that tensor too.
@usableFromInline
package final class TensorStorage: @unchecked Sendable {
    @usableFromInline package let pointer: UnsafeMutablePointer<Float>
    @usableFromInline package let count: Int
    /// Large tensors are recycled mappings (see `LargeBuffers` for why), the rest `malloc`.
    private let allocation: LargeBuffers.Allocation

    /// Zero-filled storage of `count` floats.
    package convenience init(count: Int) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Storage whose contents are unspecified: for outputs a kernel overwrites entirely.
    package init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative storage size")
        self.count = count
        allocation = LargeBuffers.Allocation(byteCount: max(count, 1) * MemoryLayout<Float>.stride)
        pointer = allocation.pointer.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit {
        allocation.free()
    }

    @usableFromInline
    package func copy() -> TensorStorage {
        let other = TensorStorage(uninitializedCount: count)
        other.pointer.update(from: pointer, count: count)
        return other
    }
}

/// A dense float32 tensor in C (row-major) order; images are NCHW.
///
/// `Tensor` has value semantics: copies share storage until one of them is mutated. The
/// elements are reached through `withUnsafeBufferPointer` (read) and
/// `withUnsafeMutableBufferPointer` (write; copies the storage first if it is shared).
public struct Tensor: @unchecked Sendable {
    /// Dimensions, outermost first, e.g. `[N, C, H, W]`.
    public private(set) var shape: [Int]
    /// The elements (package access: see `TensorStorage` for the rules of writing through it).
    @usableFromInline package var storage: TensorStorage

    /// Number of elements: the product of `shape` (1 for a scalar, `shape == []`).
    @inlinable public var count: Int { storage.count }
    /// Number of dimensions: `shape.count` (4 for an `[N, C, H, W]` batch).
    @inlinable public var rank: Int { shape.count }

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// A tensor whose elements are unspecified until written: for kernel outputs.
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
    }

    /// A tensor holding `values` (C order); `values.count` must equal the shape's product.
    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *),
                     "\(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.update(from: base, count: values.count) }
        }
    }

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        storage.pointer.update(repeating: value, count: storage.count)
    }

    /// A new tensor of `shape` whose every element `body` writes (the storage is this
    /// tensor's own, so the write is safe however the caller reaches it).
    @inlinable
    public init(uninitialized shape: [Int],
                initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.init(uninitialized: shape)
        try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Wraps existing storage; `storage.count` must equal the shape's product.
    package init(shape: [Int], storage: TensorStorage) {
        precondition(storage.count == shape.reduce(1, *),
                     "storage of \(storage.count) floats does not fit shape \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// All elements, in C order.
    @inlinable public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The element at a multi-index (bounds checked).
    @inlinable public subscript(indices: Int...) -> Float {
        get { storage.pointer[flatIndex(indices)] }
        set {
            let i = flatIndex(indices)
            withUnsafeMutableBufferPointer { $0[i] = newValue }
        }
    }

    @inlinable
    func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "index rank \(indices.count) ≠ tensor rank \(shape.count)")
        var flat = 0
        for (axis, i) in indices.enumerated() {
            precondition(i >= 0 && i < shape[axis], "index \(i) out of range for axis \(axis) of size \(shape[axis])")
            flat = flat * shape[axis] + i
        }
        return flat
    }

    /// Read-only access to the elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Mutable access; copies the storage first if another tensor shares it.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
