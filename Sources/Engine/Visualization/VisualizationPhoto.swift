import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// The photo a view is drawn over: the RGB8 pixels the model saw, at the model input's
/// resolution — never the normalised tensor clipped to 0…1 (Captum issue #1098).
public enum VisualizationPhoto {
    /// An image file decoded and resized/cropped as `preset` does (not normalised):
    /// `Preprocessor(preset:).prepare(decoded)`. Errors name the file.
    public static func load(_ url: URL, preset: PreprocessingPreset) throws(ElucidateError) -> RGBImage {
        let image = try ImageDecoder.load(url)
        do {
            return try Preprocessor(preset: preset).prepare(image)
        } catch {
            throw error.at(url.path)
        }
    }

    /// Item `index` of a model input tensor `(N, C, H, W)` or `(C, H, W)` with the
    /// normalisation of `preset` undone: `round((x · std + mean) · 255)` clamped to 0…255
    /// (`Preprocessor.denormalize`). A one-channel tensor is shown in gray and only with
    /// preset `none` (the presets' statistics are per RGB channel). An `(N, …)` tensor with
    /// one item serves every `index`.
    ///
    /// - Throws: `.invalidArgument` for another shape or channel count, an index outside
    ///   the batch, or a one-channel tensor with a normalising preset.
    public static func denormalized(_ tensor: Tensor, preset: PreprocessingPreset, index: Int = 0) throws(ElucidateError) -> RGBImage {
        var t = tensor
        if t.rank == 3 { t = t.reshaped([1] + t.shape) }
        guard t.rank == 4, t.shape[1] == 3 || t.shape[1] == 1, t.shape[2] > 0, t.shape[3] > 0, t.shape[0] > 0 else {
            throw ElucidateError(.invalidArgument,
                                 "expected an input tensor of shape (N, 3, H, W) or (3, H, W), got \(tensor.shape)")
        }
        let item = t.shape[0] == 1 ? 0 : index
        guard item >= 0 && item < t.shape[0] else {
            throw ElucidateError(.invalidArgument, "item \(index) does not exist: the input tensor holds \(t.shape[0]) items")
        }
        if t.shape[1] == 3 {
            return Preprocessor(preset: preset).denormalize(t, index: item)
        }
        guard preset == .none else {
            throw ElucidateError(.invalidArgument,
                "a one-channel input tensor cannot be de-normalised with the \(preset.rawValue) preset's RGB statistics; "
                + "use preset none for a tensor in [0, 1]")
        }
        let plane = t.shape[2] * t.shape[3]
        let gray = Tensor(shape: [1, 3, t.shape[2], t.shape[3]], values: {
            let v = t.scalars
            let start = item * plane
            let one = Array(v[start..<(start + plane)])
            return one + one + one
        }())
        return Preprocessor(preset: .none).denormalize(gray, index: 0)
    }
}
