import ElucidateCore
import Foundation

/// How alike two attribution maps are, as Adebayo et al.'s sanity checks (2018) measure it:
/// Spearman rank correlation as `scipy.stats.spearmanr`, and SSIM as scikit-image's
/// `structural_similarity` with its defaults.
public enum MapSimilarity {
    /// Spearman's rank correlation of `a` and `b` (equal counts): Pearson's correlation of
    /// their ranks, ties given their average rank (`scipy.stats.spearmanr`); NaN when either
    /// is constant, as SciPy returns.
    public static func spearman(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "the maps must have as many values")
        return pearson(ranks(a), ranks(b))
    }

    /// 1-based ranks of `values`, ties sharing the average of their ranks
    /// (`scipy.stats.rankdata(method='average')`).
    static func ranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var result = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && values[order[end]] == values[order[start]] { end += 1 }
            let rank = Double(start + end + 1) / 2  // mean of the 1-based ranks start+1 … end
            for position in start..<end { result[order[position]] = rank }
            start = end
        }
        return result
    }

    /// Pearson's correlation in double precision; NaN when either side is constant.
    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let count = Double(a.count)
        let meanA = a.reduce(0, +) / count, meanB = b.reduce(0, +) / count
        var covariance = 0.0, varianceA = 0.0, varianceB = 0.0
        for (x, y) in zip(a, b) {
            covariance += (x - meanA) * (y - meanB)
            varianceA += (x - meanA) * (x - meanA)
            varianceB += (y - meanB) * (y - meanB)
        }
        guard varianceA > 0, varianceB > 0 else { return .nan }
        return covariance / (varianceA * varianceB).squareRoot()
    }

    /// The window of scikit-image's `structural_similarity` defaults (7×7 uniform).
    public static let ssimWindow = 7

    /// SSIM of two images `[height, width]` (row-major, equal sizes, both sides ≥ 7) as
    /// `skimage.metrics.structural_similarity(a, b, data_range=dataRange)` computes it for
    /// float64 images: 7×7 uniform windows, K1 = 0.01, K2 = 0.03, sample covariances (49/48),
    /// and the mean of the SSIM map over the pixels at least 3 from every edge.
    public static func ssim(_ a: [Double], _ b: [Double], height: Int, width: Int, dataRange: Double) throws(ElucidateError) -> Double {
        precondition(a.count == height * width && b.count == a.count, "the images must be height × width")
        let window = ssimWindow, pad = ssimWindow / 2
        guard height >= window, width >= window else {
            throw ElucidateError(.inputTooSmall, "SSIM needs maps of at least \(window)×\(window) pixels, got \(height)×\(width)")
        }
        let samples = Double(window * window)
        let covarianceScale = samples / (samples - 1)
        let c1 = (0.01 * dataRange) * (0.01 * dataRange), c2 = (0.03 * dataRange) * (0.03 * dataRange)
        var total = 0.0
        for y in pad..<(height - pad) {
            for x in pad..<(width - pad) {
                var sa = 0.0, sb = 0.0, saa = 0.0, sbb = 0.0, sab = 0.0
                for wy in (y - pad)...(y + pad) {
                    for wx in (x - pad)...(x + pad) {
                        let (u, v) = (a[wy * width + wx], b[wy * width + wx])
                        sa += u; sb += v; saa += u * u; sbb += v * v; sab += u * v
                    }
                }
                let (ux, uy) = (sa / samples, sb / samples)
                let vx = covarianceScale * (saa / samples - ux * ux)
                let vy = covarianceScale * (sbb / samples - uy * uy)
                let vxy = covarianceScale * (sab / samples - ux * uy)
                total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
            }
        }
        return total / Double((height - 2 * pad) * (width - 2 * pad))
    }

    /// A map `[C, H, W]` (or `[1, C, H, W]`) summed over channels: one value per pixel.
    public static func pixelMap(_ map: Tensor) -> [Double] {
        let shape = Array(map.shape.suffix(3))
        let plane = shape[1] * shape[2]
        let values = map.scalars
        var sums = [Double](repeating: 0, count: plane)
        for (index, value) in values.prefix(shape[0] * plane).enumerated() { sums[index % plane] += Double(value) }
        return sums
    }

    /// `values` scaled to [0, 1] by their minimum and maximum (all zeros when constant): the
    /// normalised maps SSIM compares, with data range 1.
    public static func normalized(_ values: [Double]) -> [Double] {
        guard let low = values.min(), let high = values.max(), high > low else { return values.map { _ in 0 } }
        return values.map { ($0 - low) / (high - low) }
    }
}

/// How a map compares with a reference, as the sanity check reports it per stage.
public struct MapComparison: Sendable, Equatable, Codable {
    /// Spearman's correlation of the channel-summed maps' signed values.
    public var spearman: Double
    /// Spearman's correlation of their absolute values.
    public var spearmanAbs: Double
    /// SSIM of the absolute values, each scaled to [0, 1] (`MapSimilarity.normalized`), data range 1.
    public var ssim: Double

    /// Compares `map` with `reference`, both `[1, C, H, W]` or `[C, H, W]` of one shape (H, W ≥ 7).
    public init(_ map: Tensor, reference: Tensor) throws(ElucidateError) {
        guard map.count == reference.count, Array(map.shape.suffix(3)) == Array(reference.shape.suffix(3)), map.rank >= 3 else {
            throw ElucidateError(.invalidArgument, "the maps differ in shape (\(map.shape) and \(reference.shape))")
        }
        let (height, width) = (map.shape[map.rank - 2], map.shape[map.rank - 1])
        let (a, b) = (MapSimilarity.pixelMap(reference), MapSimilarity.pixelMap(map))
        let (absA, absB) = (a.map(abs), b.map(abs))
        spearman = MapSimilarity.spearman(a, b)
        spearmanAbs = MapSimilarity.spearman(absA, absB)
        ssim = try MapSimilarity.ssim(MapSimilarity.normalized(absA), MapSimilarity.normalized(absB),
                                      height: height, width: width, dataRange: 1)
    }
}
