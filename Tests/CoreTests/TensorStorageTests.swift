import ElucidateCore
import XCTest

/// `Tensor`'s value semantics through its public accessors: copies share storage until one
/// of them writes, and a write never shows through another copy.
final class TensorStorageTests: XCTestCase {
    func testMutableAccessCopiesSharedStorage() {
        let original = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        var copy = original
        copy.withUnsafeMutableBufferPointer { $0[0] = 100 }
        XCTAssertEqual(original.scalars, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(copy.scalars, [100, 2, 3, 4, 5, 6])
    }

    func testSubscriptWriteLeavesCopiesAlone() {
        let original = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        var copy = original
        copy[1, 1] = -1
        XCTAssertEqual(original[1, 1], 4)
        XCTAssertEqual(copy[1, 1], -1)
        XCTAssertEqual(copy[0, 1], 2)
    }

    func testReshapedSharesUntilWritten() {
        let flat = Tensor(shape: [4], values: [1, 2, 3, 4])
        var square = flat.reshaped([2, 2])
        square[0, 0] = 9
        XCTAssertEqual(flat.scalars, [1, 2, 3, 4])
        XCTAssertEqual(square.scalars, [9, 2, 3, 4])
    }

    func testUniqueStorageIsWrittenInPlace() {
        var tensor = Tensor(zeros: [3])
        let before = tensor.withUnsafeBufferPointer { $0.baseAddress }
        tensor.withUnsafeMutableBufferPointer { $0[2] = 7 }
        XCTAssertEqual(tensor.withUnsafeBufferPointer { $0.baseAddress }, before)
        XCTAssertEqual(tensor.scalars, [0, 0, 7])
    }

    func testInitializingWithWritesEveryElement() {
        let tensor = Tensor(uninitialized: [2, 2]) { buffer in
            for i in buffer.indices { buffer[i] = Float(i) * 0.5 }
        }
        XCTAssertEqual(tensor.scalars, [0, 0.5, 1, 1.5])
    }
}
