import ElucidateCore
import ElucidateIO
import Foundation

/// How an image becomes a model input tensor.
///
/// - `torchvision`: `Resize(256)` (shorter side to 256, Pillow antialiased bilinear),
///   `CenterCrop(224)`, `ToTensor()`, `Normalize(mean, std)` with the ImageNet statistics.
/// - `fastai`: shorter side to 224, centre crop 224, the same normalisation.
/// - `none`: no resize or crop; samples divided by 255, no normalisation.
/// - `fashion-mnist` (the built-in model's): gray as Pillow's `convert("L")` computes it,
///   replicated to R, G and B; shorter side to 28 and centre crop 28 (nothing for a 28×28
///   image); normalised with the Fashion-MNIST training mean 0.2860 and std 0.3530.
public enum PreprocessingPreset: String, CaseIterable, Sendable {
    /// Shorter side to 256, centre crop 224, ImageNet normalisation (`torchvision`).
    case torchvision
    /// Shorter side to 224, centre crop 224, ImageNet normalisation (`fastai`).
    case fastai
    /// Pixels divided by 255 only: no resize, crop or normalisation (`none`).
    case none
    /// The built-in Fashion-MNIST model's: gray, 28×28, its training mean and std (`fashion-mnist`).
    case fashionMNIST = "fashion-mnist"

    /// Per-channel (R, G, B) mean subtracted after scaling to [0, 1].
    public var mean: [Float] {
        switch self {
        case .torchvision, .fastai: Self.imageNetMean
        case .none: [0, 0, 0]
        case .fashionMNIST: [Float](repeating: Float(0.2860 as Double), count: 3)
        }
    }

    /// Per-channel (R, G, B) standard deviation divided by after subtracting `mean`.
    public var std: [Float] {
        switch self {
        case .torchvision, .fastai: Self.imageNetStd
        case .none: [1, 1, 1]
        case .fashionMNIST: [Float](repeating: Float(0.3530 as Double), count: 3)
        }
    }

    /// The shorter side after resizing, or nil for no resize.
    public var resizeShorterSide: Int? {
        switch self {
        case .torchvision: 256
        case .fastai: 224
        case .none: nil
        case .fashionMNIST: 28
        }
    }

    /// The side of the square centre crop, or nil for no crop.
    public var cropSize: Int? {
        switch self {
        case .torchvision, .fastai: 224
        case .none: nil
        case .fashionMNIST: 28
        }
    }

    /// Whether `mean`/`std` normalisation is applied.
    public var normalizes: Bool { self != .none }

    /// Whether colour images become gray (replicated to three channels) first.
    public var grayscale: Bool { self == .fashionMNIST }

    // torch.as_tensor(mean, dtype=float32) rounds the Python (double) values to float32;
    // going through Double here does the same double rounding.
    private static let imageNetMean: [Float] = [0.485, 0.456, 0.406].map { (v: Double) in Float(v) }
    private static let imageNetStd: [Float] = [0.229, 0.224, 0.225].map { (v: Double) in Float(v) }
}

/// Turns `RGBImage`s into NCHW float32 tensors the way a PyTorch pipeline would, and back.
///
/// For the `torchvision` preset the result equals
/// `Normalize(mean, std)(ToTensor()(CenterCrop(224)(Resize(256)(image))))` computed with
/// Pillow: the resize reproduces Pillow's bilinear filter bit for bit and the arithmetic
/// is done in float32 as torch does (`x / 255`, then `(x - mean) / std`).
public struct Preprocessor: Sendable {
    /// The recipe: resize, crop and normalisation.
    public let preset: PreprocessingPreset

    /// A preprocessor applying `preset`.
    public init(preset: PreprocessingPreset) {
        self.preset = preset
    }

    /// Per-channel (R, G, B) mean of the preset.
    public var mean: [Float] { preset.mean }
    /// Per-channel (R, G, B) standard deviation of the preset.
    public var std: [Float] { preset.std }

    /// Width and height after resizing, as torchvision's `Resize(size)` computes them:
    /// the shorter side becomes `size`, the longer `int(size * long / short)`.
    public static func resizedSize(width: Int, height: Int, shorterSide size: Int) -> (width: Int, height: Int) {
        precondition(width >= 1 && height >= 1 && size >= 1)
        let (short, long) = width <= height ? (width, height) : (height, width)
        let newLong = Int(Double(size * long) / Double(short))  // Python: int(size * long / short)
        return width <= height ? (size, newLong) : (newLong, size)
    }

    /// The top-left corner of torchvision's `CenterCrop`: `int(round((side - crop) / 2.0))`
    /// with Python's round-half-to-even.
    public static func centerCropOrigin(side: Int, crop: Int) -> Int {
        Int((Double(side - crop) / 2.0).rounded(.toNearestOrEven))
    }

    /// The RGB8 pixels the model sees: `image` resized and centre-cropped by the preset
    /// (unchanged for `none`).
    ///
    /// - Throws: `.inputTooSmall` for an empty image, or when the aspect ratio is so
    ///   extreme that the resized image would exceed `ImageDecoder.maximumSide`.
    public func prepare(_ image: RGBImage) throws(ElucidateError) -> RGBImage {
        guard !image.isEmpty else {
            throw ElucidateError(.inputTooSmall, "the image is empty (\(image.width)×\(image.height) pixels)")
        }
        let image = preset.grayscale ? Self.gray(image) : image
        guard let shorter = preset.resizeShorterSide else { return image }
        let long = max(image.width, image.height), short = min(image.width, image.height)
        guard Double(shorter) * Double(long) / Double(short) <= Double(ImageDecoder.maximumSide) else {
            throw ElucidateError(.inputTooSmall,
                                 "a \(image.width)×\(image.height) image is too thin to resize its shorter side to \(shorter)")
        }
        let size = Self.resizedSize(width: image.width, height: image.height, shorterSide: shorter)
        guard let crop = preset.cropSize else {
            return image.resizedBilinear(width: size.width, height: size.height)
        }
        // The resized image is never smaller than the crop (shorter side ≥ crop for both
        // presets), so torchvision's zero padding never happens.
        precondition(size.width >= crop && size.height >= crop)
        let left = Self.centerCropOrigin(side: size.width, crop: crop)
        let top = Self.centerCropOrigin(side: size.height, crop: crop)
        return image.resizedBilinear(width: size.width, height: size.height,
                                     cropX: left, cropY: top, cropWidth: crop, cropHeight: crop)
    }

    /// Pillow's `convert("L")` (ITU-R 601-2 luma, `(R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16`),
    /// replicated to R, G and B. Gray images are unchanged.
    static func gray(_ image: RGBImage) -> RGBImage {
        var pixels = image.pixels
        for i in stride(from: 0, to: pixels.count, by: 3) {
            let l = (UInt32(pixels[i]) * 19595 + UInt32(pixels[i + 1]) * 38470 + UInt32(pixels[i + 2]) * 7471 + 0x8000) >> 16
            pixels[i] = UInt8(l)
            pixels[i + 1] = UInt8(l)
            pixels[i + 2] = UInt8(l)
        }
        return RGBImage(width: image.width, height: image.height, pixels: pixels)
    }

    /// One image as a tensor of shape `(1, 3, H, W)` (NCHW, channels R, G, B), float32,
    /// values `(p / 255 - mean[c]) / std[c]` (just `p / 255` for `none`).
    public func tensor(from image: RGBImage) throws(ElucidateError) -> Tensor {
        try batch([image])
    }

    /// Several images as one tensor of shape `(N, 3, H, W)`, in order. All images must have
    /// the same size after preprocessing (always true for the cropping presets).
    ///
    /// - Throws: `.invalidArgument` for an empty list or images of different sizes after
    ///   preprocessing; the errors of `prepare`.
    public func batch(_ images: [RGBImage]) throws(ElucidateError) -> Tensor {
        guard !images.isEmpty else {
            throw ElucidateError(.invalidArgument, "no images to preprocess")
        }
        var prepared: [RGBImage] = []
        prepared.reserveCapacity(images.count)
        for image in images {
            let p = try prepare(image)
            if let first = prepared.first, first.width != p.width || first.height != p.height {
                throw ElucidateError(.invalidArgument,
                    "image \(prepared.count) is \(p.width)×\(p.height) after preprocessing but image 0 is "
                    + "\(first.width)×\(first.height); a batch needs images of one size (use a cropping preset)")
            }
            prepared.append(p)
        }
        let width = prepared[0].width, height = prepared[0].height
        let plane = width * height
        var tensor = Tensor(zeros: [prepared.count, 3, height, width])
        let mean = self.mean, std = self.std, normalizes = preset.normalizes
        tensor.withUnsafeMutableBufferPointer { out in
            for (n, image) in prepared.enumerated() {
                image.pixels.withUnsafeBufferPointer { px in
                    for c in 0..<3 {
                        let m = mean[c], s = std[c]
                        let offset = (n * 3 + c) * plane
                        for i in 0..<plane {
                            let x = Float(px[i * 3 + c]) / 255
                            out[offset + i] = normalizes ? (x - m) / s : x
                        }
                    }
                }
            }
        }
        return tensor
    }

    /// Undoes the normalisation of image `index` of an `(N, 3, H, W)` or `(3, H, W)` tensor:
    /// `round((x * std + mean) * 255)` clamped to 0...255, as RGB8 HWC. For tensors made by
    /// this preprocessor it returns exactly the pixels of `prepare(image)`.
    public func denormalize(_ tensor: Tensor, index: Int = 0) -> RGBImage {
        let shape = tensor.shape
        precondition((shape.count == 4 && shape[1] == 3) || (shape.count == 3 && shape[0] == 3),
                     "denormalize expects (N, 3, H, W) or (3, H, W), got \(shape)")
        let batch = shape.count == 4 ? shape[0] : 1
        precondition(index >= 0 && index < batch, "image \(index) of a batch of \(batch)")
        let height = shape[shape.count - 2], width = shape[shape.count - 1]
        let plane = width * height
        let mean = self.mean, std = self.std
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        tensor.withUnsafeBufferPointer { values in
            for c in 0..<3 {
                let offset = (index * 3 + c) * plane
                for i in 0..<plane {
                    let v = ((values[offset + i] * std[c] + mean[c]) * 255).rounded()
                    pixels[i * 3 + c] = v.isNaN ? 0 : UInt8(min(max(v, 0), 255))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
