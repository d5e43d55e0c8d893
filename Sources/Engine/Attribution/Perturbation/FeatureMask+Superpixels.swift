import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

extension FeatureMask {
    /// SLIC superpixels of every image of a model input batch, as LIME users segment images
    /// with scikit-image (`Superpixels.slic`): the mask `[N, 1, H, W]` whose row n holds the
    /// segments of image n, ids 0…K_n−1, shared by its three channels.
    ///
    /// The segmentation sees what the model sees: `inputs` `[N, 3, H, W]`, normalised by
    /// `preset`, are de-normalised (`x · std + mean`) and clamped to the RGB range 0…1. Rows
    /// may have different numbers of segments: the perturbation methods group each row by
    /// its own ids.
    ///
    /// - Throws: `.invalidArgument` for inputs of another shape, or the errors of
    ///   `Superpixels.slic` (N < 1, compactness not a positive number, non-finite samples).
    public static func superpixels(of inputs: Tensor, preset: PreprocessingPreset, segments: Int,
                                   compactness: Double = 10) throws(ElucidateError) -> FeatureMask {
        guard inputs.rank == 4, inputs.shape[0] > 0, inputs.shape[1] == 3 else {
            throw ElucidateError(.invalidArgument, "superpixels need RGB inputs [N, 3, H, W], got \(inputs.shape)")
        }
        let (rows, height, width) = (inputs.shape[0], inputs.shape[2], inputs.shape[3])
        let plane = height * width
        let values = inputs.scalars
        let (mean, std) = (preset.mean, preset.std)
        var ids: [Int32] = []
        ids.reserveCapacity(rows * plane)
        for row in 0..<rows {
            var rgb = [Float](repeating: 0, count: 3 * plane)
            for c in 0..<3 {
                let offset = (row * 3 + c) * plane
                for i in 0..<plane { rgb[c * plane + i] = min(max(values[offset + i] * std[c] + mean[c], 0), 1) }
            }
            ids += try Superpixels.slic(Tensor(shape: [3, height, width], values: rgb),
                                        segments: segments, compactness: compactness)
        }
        return try FeatureMask(shape: [rows, 1, height, width], ids: ids)
    }
}
