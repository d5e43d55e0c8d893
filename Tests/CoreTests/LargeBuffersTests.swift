@testable import ElucidateCore
import XCTest

/// The recycling of large tensor buffers: a freed buffer goes to the next request of its
/// length, kept buffers never push the total above the most ever in use at once, and
/// `Runtime.releaseCachedMemory()` returns them. Lengths here are odd page counts that no
/// other test's tensors have, so buffers other tests free cannot satisfy these requests.
final class LargeBuffersTests: XCTestCase {
    private let oddLength = 3 * (1 << 20) + 7 * 4096 + 12   // rounds up to 3 MiB + 8 pages

    func testFreedBufferIsReusedForTheSameLength() {
        let first = LargeBuffers.Allocation(byteCount: oddLength)
        let address = first.pointer
        first.free()
        let second = LargeBuffers.Allocation(byteCount: oddLength)
        defer { second.free() }
        XCTAssertEqual(second.pointer, address, "a kept buffer of the same mapped length is handed out again")
    }

    func testBuffersAreAlignedAndWritableToTheEnd() {
        for bytes in [LargeBuffers.threshold, oddLength, 5 * (1 << 20) + 1] {
            let allocation = LargeBuffers.Allocation(byteCount: bytes)
            defer { allocation.free() }
            XCTAssertEqual(Int(bitPattern: allocation.pointer) % 64, 0)
            let bytesPointer = allocation.pointer.assumingMemoryBound(to: UInt8.self)
            bytesPointer[0] = 1
            bytesPointer[bytes - 1] = 2   // the last requested byte is mapped
            XCTAssertEqual(bytesPointer[0] + bytesPointer[bytes - 1], 3)
        }
    }

    func testSmallRequestsStayOnMalloc() {
        let before = LargeBuffers.statistics.live
        let small = LargeBuffers.Allocation(byteCount: LargeBuffers.threshold - 1)
        XCTAssertEqual(LargeBuffers.statistics.live, before, "below the threshold nothing is mapped")
        small.free()
    }

    /// Whatever the order of requests and frees, live + kept never exceeds the most ever live
    /// at once plus the slack.
    func testKeptBuffersStayUnderTheHighWaterMark() {
        Runtime.releaseCachedMemory()
        var generator = SystemRandomNumberGenerator()
        var held: [LargeBuffers.Allocation] = []
        var mostLive = LargeBuffers.statistics.live
        for _ in 0..<1000 {
            if held.isEmpty || Bool.random(using: &generator) {
                let pages = Int.random(in: 256...2048, using: &generator) | 1   // odd: ≥ 1 MiB, unlike other tests'
                held.append(LargeBuffers.Allocation(byteCount: pages * 4096))
            } else {
                held.remove(at: Int.random(in: 0..<held.count, using: &generator)).free()
            }
            let state = LargeBuffers.statistics
            mostLive = max(mostLive, state.live)
            XCTAssertGreaterThanOrEqual(state.highWater, mostLive)
            XCTAssertLessThanOrEqual(state.live + state.kept, state.highWater + LargeBuffers.slack(highWater: state.highWater))
            XCTAssertLessThanOrEqual(state.live, state.highWater)
        }
        held.forEach { $0.free() }
        let freed = Runtime.releaseCachedMemory()
        XCTAssertGreaterThan(freed, 0)
        XCTAssertEqual(LargeBuffers.statistics.kept, 0)
    }

    func testTensorsOfEverySizeKeepTheirValues() {
        for count in [0, 1, 1000, LargeBuffers.threshold / 4 - 1, LargeBuffers.threshold / 4, 600_000] {
            let values = (0..<count).map { Float($0 % 1013) }
            let tensor = Tensor(shape: [count], values: values)
            XCTAssertEqual(tensor.scalars, values)
            XCTAssertEqual(Tensor(zeros: [count]).scalars.allSatisfy { $0 == 0 }, true, "zeros also on reused memory")
        }
    }
}
