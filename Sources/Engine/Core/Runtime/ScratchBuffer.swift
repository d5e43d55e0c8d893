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
        if let index = free.firstIndex(where: { $0.storage.count >= count }) {
            return free.remove(at: index)
        }
        return Buffer(count: count)
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
