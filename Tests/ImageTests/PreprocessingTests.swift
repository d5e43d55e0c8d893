import Foundation
import XCTest
import Elucidate
import TestSupport

final class PreprocessingTests: XCTestCase {
    /// Pillow's decoded pixels of photo.jpg (lossless copy written by the fixture script).
    private func pillowPhoto() throws -> RGBImage {
        let entry = try XCTUnwrap(try ImageFixtureManifest.load().images["photo.jpg"])
        let pixels = try XCTUnwrap(try pillowPixels(entry))
        return RGBImage(width: entry.width, height: entry.height, pixels: pixels)
    }

    // MARK: Resize

    func testBilinearResizeEqualsPillowExactly() throws {
        let manifest = try ImageFixtureManifest.load()
        let photo = try pillowPhoto()
        XCTAssertGreaterThanOrEqual(manifest.resize.count, 6)
        for reference in manifest.resize {
            let expected = try ImageDecoder.load(imageFixture(reference.file))
            XCTAssertEqual(fnv1a64(expected.pixels), reference.fnv1a64, reference.file)
            let resized = photo.resizedBilinear(width: reference.width, height: reference.height)
            XCTAssertEqual(resized.width, reference.width)
            XCTAssertEqual(resized.height, reference.height)
            let d = pixelDifference(resized.pixels, expected.pixels)
            XCTAssertEqual(d.differing, 0, "\(reference.file): \(d.differing) samples differ from Pillow, max \(d.max)")
        }
    }

    func testResizeOfARegionEqualsCropOfTheResize() {
        var random = SeededGenerator(seed: 3)
        let source = RGBImage(width: 23, height: 17, pixels: (0..<(23 * 17 * 3)).map { _ in UInt8.random(in: 0...255, using: &random) })
        for (w, h) in [(40, 9), (7, 30), (23, 40), (50, 17), (23, 17), (5, 5)] {
            let full = source.resizedBilinear(width: w, height: h)
            for _ in 0..<5 {
                let x = Int.random(in: 0..<w, using: &random), y = Int.random(in: 0..<h, using: &random)
                let cw = Int.random(in: 1...(w - x), using: &random), ch = Int.random(in: 1...(h - y), using: &random)
                XCTAssertEqual(source.resizedBilinear(width: w, height: h, cropX: x, cropY: y, cropWidth: cw, cropHeight: ch),
                               full.cropped(x: x, y: y, width: cw, height: ch), "\(w)×\(h) region \(cw)×\(ch) at (\(x), \(y))")
            }
        }
        XCTAssertEqual(source.resizedBilinear(width: 23, height: 17), source)
    }

    func testResizeKeepsAFlatColourFlat() {
        let flat = RGBImage(width: 31, height: 19, red: 200, green: 3, blue: 97)
        XCTAssertEqual(flat.resizedBilinear(width: 7, height: 64), RGBImage(width: 7, height: 64, red: 200, green: 3, blue: 97))
    }

    // MARK: Geometry

    func testTorchvisionResizeAndCropArithmetic() {
        XCTAssert(Preprocessor.resizedSize(width: 500, height: 375, shorterSide: 256) == (341, 256))
        XCTAssert(Preprocessor.resizedSize(width: 375, height: 500, shorterSide: 256) == (256, 341))
        XCTAssert(Preprocessor.resizedSize(width: 300, height: 200, shorterSide: 256) == (384, 256))
        XCTAssert(Preprocessor.resizedSize(width: 97, height: 61, shorterSide: 256) == (407, 256))  // 407.08
        XCTAssert(Preprocessor.resizedSize(width: 61, height: 97, shorterSide: 224) == (224, 356))  // 356.19
        XCTAssert(Preprocessor.resizedSize(width: 10, height: 10, shorterSide: 256) == (256, 256))
        // Python's round() rounds halves to even.
        XCTAssertEqual(Preprocessor.centerCropOrigin(side: 225, crop: 224), 0)   // round(0.5) = 0
        XCTAssertEqual(Preprocessor.centerCropOrigin(side: 227, crop: 224), 2)   // round(1.5) = 2
        XCTAssertEqual(Preprocessor.centerCropOrigin(side: 229, crop: 224), 2)   // round(2.5) = 2
        XCTAssertEqual(Preprocessor.centerCropOrigin(side: 341, crop: 224), 58)  // round(58.5) = 58
        XCTAssertEqual(Preprocessor.centerCropOrigin(side: 256, crop: 224), 16)
    }

    func testPresetStatistics() {
        XCTAssertEqual(PreprocessingPreset.allCases, [.torchvision, .fastai, .none, .fashionMNIST])
        XCTAssertEqual(PreprocessingPreset(rawValue: "fastai"), .fastai)
        XCTAssertEqual(Preprocessor(preset: .torchvision).mean, [0.485, 0.456, 0.406])
        XCTAssertEqual(Preprocessor(preset: .fastai).std, [0.229, 0.224, 0.225])
        XCTAssertEqual(Preprocessor(preset: .none).mean, [0, 0, 0])
        XCTAssertEqual(Preprocessor(preset: .none).std, [1, 1, 1])
    }

    // MARK: Parity with Pillow + torchvision

    func testPresetsEqualPillowGivenPillowPixels() throws {
        let manifest = try ImageFixtureManifest.load()
        var checked = 0
        for (name, entry) in manifest.images.sorted(by: { $0.key < $1.key }) {
            guard let presets = entry.presets else { continue }
            // The PNGs decode exactly like Pillow (see ImageDecodingTests); for JPEGs use Pillow's pixels.
            let source = try entry.format == "PNG"
                ? ImageDecoder.load(imageFixture(name))
                : RGBImage(width: entry.width, height: entry.height, pixels: XCTUnwrap(pillowPixels(entry)))
            for (presetName, reference) in presets {
                let preset = try XCTUnwrap(PreprocessingPreset(rawValue: presetName))
                let prepared = try Preprocessor(preset: preset).prepare(source)
                let expected = try ImageDecoder.load(imageFixture(reference.crop))
                XCTAssertEqual(fnv1a64(expected.pixels), reference.fnv1a64)
                let size = Preprocessor.resizedSize(width: entry.width, height: entry.height, shorterSide: preset.resizeShorterSide!)
                XCTAssert(size == (reference.resizedWidth, reference.resizedHeight), "\(name) \(presetName) size \(size)")
                let d = pixelDifference(prepared.pixels, expected.pixels)
                XCTAssertEqual(d.differing, 0, "\(name) \(presetName): \(d.differing) samples differ, max \(d.max)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 12)
    }

    func testTorchvisionTensorEqualsReferenceBitForBit() throws {
        let photo = try pillowPhoto()
        let tensor = try Preprocessor(preset: .torchvision).tensor(from: photo)
        let expected = try NPY.readFloat32(imageFixture("photo.torchvision.npy"))
        XCTAssertEqual(tensor.shape, [1, 3, 224, 224])
        XCTAssertEqual(tensor.shape, expected.shape)
        let mismatches = zip(tensor.scalars, expected.scalars).filter { $0.bitPattern != $1.bitPattern }.count
        XCTAssertEqual(mismatches, 0, "float32 values differing from ToTensor+Normalize")
    }

    /// The whole pipeline (our decoder, our resize) against Pillow + torchvision, measured
    /// on de-normalised pixels: the requirement is a mean absolute error ≤ 1/255.
    func testEndToEndParity() throws {
        let manifest = try ImageFixtureManifest.load()
        for (name, entry) in manifest.images.sorted(by: { $0.key < $1.key }) {
            guard let presets = entry.presets else { continue }
            let image = try ImageDecoder.load(imageFixture(name))
            for (presetName, reference) in presets.sorted(by: { $0.key < $1.key }) {
                let preprocessor = Preprocessor(preset: try XCTUnwrap(PreprocessingPreset(rawValue: presetName)))
                let tensor = try preprocessor.tensor(from: image)
                XCTAssertEqual(tensor.shape, [1, 3, 224, 224])
                let pixels = preprocessor.denormalize(tensor)
                let expected = try ImageDecoder.load(imageFixture(reference.crop))
                let d = pixelDifference(pixels.pixels, expected.pixels)
                let mae = d.mean / 255
                print("preprocessing parity \(name) \(presetName): MAE \(String(format: "%.6f", mae)) (\(String(format: "%.4f", d.mean)) levels), "
                      + "max \(d.max) levels, \(d.differing) of \(expected.pixels.count) samples differ")
                XCTAssertLessThanOrEqual(mae, 1.0 / 255, "\(name) \(presetName)")
            }
        }
    }

    // MARK: Tensor layout and batches

    func testNonePresetIsPixelsOver255InNCHW() throws {
        var pixels = [UInt8](repeating: 0, count: 3 * 2 * 3)
        for i in pixels.indices { pixels[i] = UInt8(i * 10) }
        let image = RGBImage(width: 3, height: 2, pixels: pixels)
        let tensor = try Preprocessor(preset: .none).tensor(from: image)
        XCTAssertEqual(tensor.shape, [1, 3, 2, 3])
        for y in 0..<2 {
            for x in 0..<3 {
                for c in 0..<3 {
                    XCTAssertEqual(tensor[0, c, y, x], Float(pixels[(y * 3 + x) * 3 + c]) / 255)
                }
            }
        }
        XCTAssertEqual(Preprocessor(preset: .none).denormalize(tensor), image)
    }

    func testNormalisationFormula() throws {
        let image = RGBImage(width: 300, height: 300, red: 255, green: 0, blue: 128)
        let tensor = try Preprocessor(preset: .fastai).tensor(from: image)
        XCTAssertEqual(tensor.shape, [1, 3, 224, 224])
        XCTAssertEqual(tensor[0, 0, 5, 7], (Float(1) - Float(0.485)) / Float(0.229))
        XCTAssertEqual(tensor[0, 1, 100, 200], (Float(0) - Float(0.456)) / Float(0.224))
        XCTAssertEqual(tensor[0, 2, 223, 0], (Float(128) / 255 - Float(0.406)) / Float(0.225))
    }

    func testDenormalizeInvertsEveryPreset() throws {
        var random = SeededGenerator(seed: 5)
        let image = RGBImage(width: 230, height: 260, pixels: (0..<(230 * 260 * 3)).map { _ in UInt8.random(in: 0...255, using: &random) })
        for preset in PreprocessingPreset.allCases {
            let preprocessor = Preprocessor(preset: preset)
            let tensor = try preprocessor.tensor(from: image)
            XCTAssertEqual(preprocessor.denormalize(tensor), try preprocessor.prepare(image), "\(preset)")
            XCTAssertEqual(preprocessor.denormalize(tensor.reshaped(Array(tensor.shape.dropFirst()))),
                           try preprocessor.prepare(image))
        }
    }

    func testBatches() throws {
        let a = RGBImage(width: 300, height: 200, red: 10, green: 20, blue: 30)
        let b = RGBImage(width: 100, height: 400, red: 200, green: 100, blue: 0)
        let preprocessor = Preprocessor(preset: .torchvision)
        let batch = try preprocessor.batch([a, b, a])
        XCTAssertEqual(batch.shape, [3, 3, 224, 224])
        XCTAssertEqual(preprocessor.denormalize(batch, index: 1), try preprocessor.prepare(b))
        let single = try preprocessor.tensor(from: b)
        XCTAssertEqual(Array(batch.scalars[(3 * 224 * 224)..<(6 * 224 * 224)]), single.scalars)

        XCTAssertThrowsError(try Preprocessor(preset: .none).batch([a, b])) { error in
            let e = error as? ElucidateError
            XCTAssertEqual(e?.kind, .invalidArgument)
            XCTAssertTrue(e?.message.contains("100×400") ?? false, "\(error)")
        }
        XCTAssertThrowsError(try preprocessor.batch([])) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .invalidArgument)
        }
        XCTAssertEqual(try Preprocessor(preset: .none).batch([a, a]).shape, [2, 3, 200, 300])
    }

    func testDegenerateImagesAreRefused() {
        XCTAssertThrowsError(try Preprocessor(preset: .torchvision).tensor(from: RGBImage(width: 0, height: 5, pixels: []))) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .inputTooSmall)
        }
        XCTAssertThrowsError(try Preprocessor(preset: .none).tensor(from: RGBImage(width: 4, height: 0, pixels: [])))
        // 1×200: the resized width would be 51 200 pixels, beyond the image size limit.
        let thin = RGBImage(width: 200, height: 1, red: 1, green: 2, blue: 3)
        XCTAssertThrowsError(try Preprocessor(preset: .torchvision).tensor(from: thin)) { error in
            XCTAssertEqual((error as? ElucidateError)?.kind, .inputTooSmall)
        }
        // A small but sane image is upscaled, as torchvision does.
        XCTAssertEqual(try Preprocessor(preset: .torchvision).tensor(from: RGBImage(width: 3, height: 2, red: 9, green: 9, blue: 9)).shape,
                       [1, 3, 224, 224])
    }
}
