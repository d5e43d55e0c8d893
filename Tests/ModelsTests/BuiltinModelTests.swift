import Elucidate
@testable import ElucidateImage
@testable import ElucidateModels
import Foundation
import TestSupport
import XCTest

/// The built-in Fashion-MNIST ResNet (tools/train_builtin.py) on a committed slice of the
/// Fashion-MNIST test set: the first 500 images, as IDX files, with PyTorch's logits.
final class BuiltinModelTests: XCTestCase {
    /// An uncompressed unsigned-byte IDX file: shape and bytes.
    static func readIDX(_ url: URL) throws -> (shape: [Int], bytes: [UInt8]) {
        let data = [UInt8](try Data(contentsOf: url))
        XCTAssertEqual(Array(data.prefix(3)), [0, 0, 8])
        let dims = Int(data[3])
        let shape = (0..<dims).map { i in data[(4 + 4 * i)..<(8 + 4 * i)].reduce(0) { $0 << 8 | Int($1) } }
        let bytes = Array(data[(4 + 4 * dims)...])
        XCTAssertEqual(bytes.count, shape.reduce(1, *))
        return (shape, bytes)
    }

    func testLoadsWithMetadata() throws {
        let classifier = try BuiltinModels.load()
        XCTAssertEqual(classifier.classes, 10)
        XCTAssertEqual(classifier.labels?[7], "Sneaker")
        XCTAssertEqual(classifier.preset, .fashionMNIST)
        XCTAssertEqual(classifier.architecture.stem, .small)
        XCTAssertEqual(classifier.architecture.blocksPerStage, [1, 1, 1, 1])
        XCTAssertEqual(classifier.network.inputChannels, 3)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: BuiltinModels.url(for: BuiltinModels.defaultName).path)[.size] as? Int)
        XCTAssertLessThanOrEqual(size, 5_000_000)
    }

    /// At least 90% on the slice, through the real preprocessing (gray → RGB image →
    /// fashion-mnist preset), and the logits of PyTorch.
    func testAccuracyOnCommittedTestSlice() throws {
        let classifier = try BuiltinModels.load()
        let images = try Self.readIDX(fixtureURL("builtin/test-slice-images.idx"))
        let labels = try Self.readIDX(fixtureURL("builtin/test-slice-labels.idx"))
        let n = images.shape[0]
        XCTAssertEqual(images.shape, [n, 28, 28])
        XCTAssertGreaterThanOrEqual(n, 500)
        let preprocessor = Preprocessor(preset: .fashionMNIST)
        var rgb: [RGBImage] = []
        for i in 0..<n {
            let gray = images.bytes[(i * 784)..<((i + 1) * 784)]
            rgb.append(RGBImage(width: 28, height: 28, pixels: gray.flatMap { [$0, $0, $0] }))
        }
        let logits = try classifier.logits(try preprocessor.batch(rgb))
        XCTAssertEqual(logits.shape, [n, 10])
        var correct = 0
        for i in 0..<n {
            let row = (0..<10).map { logits[i, $0] }
            if row.firstIndex(of: row.max()!) == Int(labels.bytes[i]) { correct += 1 }
        }
        let accuracy = Double(correct) / Double(n)
        print("built-in model: \(correct)/\(n) = \(accuracy) on the committed test slice")
        XCTAssertGreaterThanOrEqual(accuracy, 0.90)

        let expected = try NPY.readFloat32(fixtureURL("builtin/test-slice-logits.npy"))
        let error = relativeL2Error(logits.scalars, expected.scalars)
        print("built-in model: relative L2 error vs PyTorch \(error)")
        XCTAssertLessThanOrEqual(error, 1e-4)
    }

    /// The bundled PNGs decode to what the model was trained on and are classified correctly.
    func testBundledImages() throws {
        let classifier = try BuiltinModels.load()
        let preprocessor = Preprocessor(preset: .fashionMNIST)
        let images = packageRootURL.appendingPathComponent("Resources/images")
        for (file, label) in [("sneaker.png", 7), ("ankle-boot.png", 9), ("trouser.png", 1)] {
            let image = try ImageDecoder.load(images.appendingPathComponent(file))
            let logits = try classifier.logits(try preprocessor.tensor(from: image))
            let top = classifier.topClasses(logits: logits, k: 1)[0][0]
            XCTAssertEqual(top.index, label, "\(file): \(top)")
        }
    }

    func testGrayConversionIsPillows() {
        let image = RGBImage(width: 2, height: 1, pixels: [255, 0, 0, 10, 200, 30])
        // PIL: Image.new("RGB", ...).convert("L") gives 76 and 124 for these pixels.
        XCTAssertEqual(Preprocessor.gray(image).pixels, [76, 76, 76, 124, 124, 124])
    }
}
