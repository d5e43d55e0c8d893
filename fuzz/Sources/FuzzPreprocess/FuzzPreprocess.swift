// libFuzzer entry point: the whole preprocessing path on arbitrary bytes — decode (JPEG or
// PNG, sniffed; with the EXIF orientation applied and ignored), then for every preset
// (torchvision, fastai, fashion-mnist, none) resize, centre-crop, grayscale and normalise to
// the model's input tensor, checking its shape and that every value is finite.
//
// Images whose header claims more than ImageDecoder.maximumSide / maximumPixelCount are
// refused by the decoder before any pixel buffer is allocated; of the rest, only images up
// to 4 M pixels go on to the presets (a larger one is legal but would make each run a
// second or more: the resize of a big image is the same code as a small one's).
// Parse errors (ElucidateError) are the expected outcome for most inputs; only a crash,
// a sanitizer report, a hang or an out-of-memory counts as a finding.

import ElucidateCore
import ElucidateImage
import Foundation

private let maximumPreprocessedPixels = 4 << 20

private func preprocess(_ image: RGBImage) {
    guard image.width * image.height <= maximumPreprocessedPixels else { return }
    for preset in PreprocessingPreset.allCases {
        guard let tensor = try? Preprocessor(preset: preset).tensor(from: image) else { continue }
        let shape = tensor.shape
        precondition(shape.count == 4 && shape[0] == 1 && shape[1] == 3, "tensor shape \(shape)")
        if let crop = preset.cropSize {
            precondition(shape[2] == crop && shape[3] == crop, "\(preset) crop: \(shape)")
        } else if preset.resizeShorterSide == nil {
            precondition(shape[2] == image.height && shape[3] == image.width, "\(preset) size: \(shape)")
        }
        tensor.withUnsafeBufferPointer { values in
            precondition(values.count == shape.reduce(1, *), "tensor count")
            for value in values { precondition(value.isFinite, "\(preset): non-finite value") }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard let image = try? ImageDecoder.decode(bytes) else { return 0 }
    precondition(image.pixels.count == image.width * image.height * 3, "RGB buffer size")
    preprocess(image)
    if let turned = try? ImageDecoder.decode(bytes, exif: .apply), turned.width != image.width || turned.height != image.height {
        preprocess(turned)
    }
    return 0
}
