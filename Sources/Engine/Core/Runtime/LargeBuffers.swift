import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where buffers of a megabyte and more (activations, gradients, batches) get their memory:
/// pages mapped straight from the kernel (2 MiB-aligned when large enough), and kept
/// for reuse when freed.
///
/// Why: an attribution method runs the same forward/backward pass over and over (50–200 path
/// points, hundreds of masked copies), each pass allocating and freeing the same gigabyte of
/// tensors. Through `malloc` every large tensor is a fresh `mmap` that is unmapped again on
/// free, so every pass touched every page anew: a page fault and a page clear per 4 KiB,
/// and glibc's adaptive threshold moved tensors of up to 32 MiB into its arenas after the
/// first pass, where fragmentation raised the peak memory by up to a third over a single
/// pass (IG-50 on ResNet34: 1.3–1.9 GB from run to run). Here a freed buffer is kept and
/// handed to the next request of the same mapped length, so the peak stays that of one pass.
///
/// Bounded: live and kept buffers together never exceed the most the process has had in use
/// at once (`highWater`) plus a slack of half of that (at least 64 MiB, at most 224 MiB).
/// A request that finds no buffer of its length first unmaps kept ones, oldest first, until
/// the live buffers, the kept ones and the new one fit under that bound. The slack is what
/// makes reuse work: with none, every mismatch between two passes (a smaller last chunk, a
/// temporary of another size) evicts a buffer the next pass needs, whose miss evicts another,
/// and a pass ends up mapping most of its memory afresh again. What is kept after a
/// computation stays mapped until the next large request reuses or evicts it, or
/// `Runtime.releaseCachedMemory()` returns it to the system.
///
/// Thread-safe: one lock around the bookkeeping (a few hundred calls per pass); the `mmap`
/// and `munmap` calls themselves run outside it.
package enum LargeBuffers {
    /// Requests of at least this many bytes come from here; smaller ones from `malloc`.
    package static let threshold = 1 << 20
    private static let page = 4096
    private static let hugePage = 2 << 20

    private final class Pool: @unchecked Sendable {
        let lock = NSLock()
        /// Freed mappings, oldest first.
        var kept: [(length: Int, pointer: UnsafeMutableRawPointer)] = []
        var keptBytes = 0
        var liveBytes = 0
        var highWater = 0
    }
    private static let pool = Pool()

    /// Memory for `byteCount` bytes (at least 1), 64-byte aligned: a recycled mapping when large,
    /// else (or when the system cannot map more) `malloc`. Give it back with `free()`.
    package struct Allocation {
        package let pointer: UnsafeMutableRawPointer
        let byteCount: Int
        let recycled: Bool

        package init(byteCount requested: Int) {
            byteCount = max(requested, 1)
            if byteCount >= LargeBuffers.threshold, let mapped = LargeBuffers.allocate(byteCount: byteCount) {
                pointer = mapped
                recycled = true
            } else {
                pointer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
                recycled = false
            }
        }

        /// Returns the memory (kept for reuse when it was a recycled mapping).
        package func free() {
            if recycled {
                LargeBuffers.deallocate(pointer, byteCount: byteCount)
            } else {
                pointer.deallocate()
            }
        }
    }

    /// The length `allocate(byteCount:)` maps for a request: whole pages.
    package static func mappedLength(_ byteCount: Int) -> Int { (byteCount + page - 1) / page * page }

    /// A buffer of at least `byteCount` bytes (≥ `threshold`), aligned to a page (so to 64
    /// bytes), contents unspecified; or nil when the system has no memory to map, in which case
    /// the caller falls back to `malloc`. Give it back with `deallocate(_:byteCount:)` and the
    /// same `byteCount`.
    package static func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        precondition(byteCount >= threshold, "small buffers come from malloc")
        let length = mappedLength(byteCount)
        var evicted: [(length: Int, pointer: UnsafeMutableRawPointer)] = []
        pool.lock.lock()
        if let index = pool.kept.lastIndex(where: { $0.length == length }) {
            let pointer = pool.kept.remove(at: index).pointer
            pool.keptBytes -= length
            pool.liveBytes += length
            // A reused buffer can still raise the most ever live (since it was kept, others
            // may have been mapped); live + kept is unchanged.
            pool.highWater = max(pool.highWater, pool.liveBytes)
            pool.lock.unlock()
            return pointer
        }
        // No buffer of this length: make room under the bound before mapping more.
        pool.highWater = max(pool.highWater, pool.liveBytes + length)
        let bound = pool.highWater + slack(highWater: pool.highWater)
        while !pool.kept.isEmpty && pool.liveBytes + pool.keptBytes + length > bound {
            let oldest = pool.kept.removeFirst()
            pool.keptBytes -= oldest.length
            evicted.append(oldest)
        }
        pool.liveBytes += length
        pool.lock.unlock()
        for buffer in evicted { munmap(buffer.pointer, buffer.length) }
        guard let pointer = map(length) else {
            pool.lock.lock()
            pool.liveBytes -= length
            pool.lock.unlock()
            return nil
        }
        return pointer
    }

    /// Takes back a buffer from `allocate(byteCount:)` and keeps it for the next request of
    /// its length.
    package static func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let length = mappedLength(byteCount)
        pool.lock.lock()
        pool.liveBytes -= length
        pool.kept.append((length, pointer))
        pool.keptBytes += length
        pool.lock.unlock()
    }

    /// How far above `highWater` live and kept buffers may reach together (see the type's
    /// documentation): half of it, at least 64 MiB and at most 224 MiB. Half, because a forward-only
    /// pass (Score-CAM, occlusion) holds few tensors at once but needs one of every size the network
    /// makes: with an eighth, Score-CAM mapped 3.5 GB afresh over 17 batches. IG, whose passes hold
    /// most of their tensors at once, reaches the cap either way, so the cap sets its peak. Since its
    /// input gradients transform their weights per call (`Conv2d.transientGradientWeightTiles`),
    /// those transient tensors need room too: the seed's IG-200 call (Zen 3, GNU time) maps afresh on
    /// every pass below about 224 MiB (176 MiB: 745k page faults instead of 406k, +1.5 s of system
    /// time) and peaks at 1.41 GB with 224 MiB, 1.45 GB with 256.
    package static func slack(highWater: Int) -> Int { min(max(highWater / 2, 64 << 20), 224 << 20) }

    /// Unmaps every kept buffer (see `Runtime.releaseCachedMemory()`); returns the bytes freed.
    @discardableResult
    package static func releaseKept() -> Int {
        pool.lock.lock()
        let kept = pool.kept
        pool.kept = []
        pool.keptBytes = 0
        pool.highWater = pool.liveBytes
        pool.lock.unlock()
        for buffer in kept { munmap(buffer.pointer, buffer.length) }
        return kept.reduce(0) { $0 + $1.length }
    }

    /// Bytes in use, bytes kept for reuse, and the most ever in use at once.
    package static var statistics: (live: Int, kept: Int, highWater: Int) {
        pool.lock.lock(); defer { pool.lock.unlock() }
        return (pool.liveBytes, pool.keptBytes, pool.highWater)
    }

    /// Maps `length` bytes (whole pages), 2 MiB-aligned when at least 2 MiB: where transparent
    /// huge pages are `always` on, the kernel backs aligned 2 MiB ranges with huge pages. They
    /// are not asked for (`MADV_HUGEPAGE`): with the usual `defrag=madvise` setting that makes
    /// every fault of such a range compact memory first, which on a machine whose memory is
    /// fragmented (a long-running host, a VM after builds) cost more kernel time than the page
    /// faults it saves.
    private static func map(_ length: Int) -> UnsafeMutableRawPointer? {
        let protection = PROT_READ | PROT_WRITE
        let flags = MAP_PRIVATE | MAP_ANONYMOUS
        guard length >= hugePage else {
            let raw = mmap(nil, length, protection, flags, -1, 0)
            return raw == MAP_FAILED ? nil : raw
        }
        // Over-map by one huge page, then trim the unaligned head and the tail.
        guard let raw = mmap(nil, length + hugePage, protection, flags, -1, 0), raw != MAP_FAILED else { return nil }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(hugePage - 1)) & ~UInt(hugePage - 1)
        let head = Int(aligned - address)
        if head > 0 { munmap(raw, head) }
        munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(length)), hugePage - head)
        return UnsafeMutableRawPointer(bitPattern: aligned)!
    }
}
