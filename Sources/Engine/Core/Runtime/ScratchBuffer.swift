import Foundation

/// A small pool of reusable work buffers (im2col columns and the like).
///
/// Convolutions need megabytes of scratch per call; allocating it afresh each time costs
/// page faults on every layer, so buffers are kept and handed out again.
package final class ScratchBuffer: @unchecked Sendable {
    package static let shared = ScratchBuffer()

    package final class Buffer {
        let storage: TensorStorage
        package var pointer: UnsafeMutablePointer<Float> { storage.pointer }
        init(count: Int) { storage = TensorStorage(uninitializedCount: count) }
    }

    private let lock = NSLock()
    private var free: [Buffer] = []
    /// Buffers kept for reuse at most; more concurrent users just allocate.
    private let keep = 4

    package func acquire(count: Int) -> Buffer {
        lock.lock()
        defer { lock.unlock() }
        // The smallest that fits: a small request must not take the large buffer a later
        // large request would then have to allocate again.
        if let index = free.indices.filter({ free[$0].storage.count >= count })
            .min(by: { free[$0].storage.count < free[$1].storage.count }) {
            return free.remove(at: index)
        }
        return Buffer(count: Self.sizeClass(count))
    }

    /// `count` rounded up to a quarter-octave step (at most 25 % more) from 256 Ki floats on:
    /// the products' scratch comes in many nearby sizes (occlusion's crops, Winograd chunks),
    /// and a buffer of a size class serves all of them instead of each mapping (and faulting in)
    /// a buffer of its own.
    static func sizeClass(_ count: Int) -> Int {
        guard count > 1 << 18 else { return count }
        let step = 1 << (Int.bitWidth - count.leadingZeroBitCount - 3)
        return (count + step - 1) / step * step
    }

    package func release(_ buffer: Buffer) {
        lock.lock()
        defer { lock.unlock() }
        free.append(buffer)
        if free.count > keep {
            // Drop the smallest: large buffers are the expensive ones to recreate.
            free.sort { $0.storage.count > $1.storage.count }
            free.removeLast()
        }
    }
}
