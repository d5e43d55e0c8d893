import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// A 2-D attribution map, `height` rows of `width` values (row-major, row 0 at the top),
/// and Captum's normalisation of it (`captum.attr._utils.visualization._normalize_attr`).
///
/// The arithmetic follows NumPy's, in float32 and in the same order, so that the
/// normalised map equals Captum's (with NumPy 2) to within rounding of the last bit:
/// channels are summed in order `((c0 + c1) + c2) + …` (what `np.sum(hwc, axis=2)` does
/// for the transposed `(H, W, C)` array Captum's users pass), the cumulative sum of the
/// sorted magnitudes runs sequentially, and the target mass is `total * 0.01 * percentile`
/// in float32.
public struct AttributionMap: Equatable, Sendable {
    /// Columns of the map (the input's W).
    public let width: Int
    /// Rows of the map (the input's H).
    public let height: Int
    /// `width * height` values, row-major.
    public let values: [Float]

    /// A map from `width * height` row-major values (a precondition).
    public init(width: Int, height: Int, values: [Float]) {
        precondition(width >= 0 && height >= 0 && values.count == width * height,
                     "\(values.count) values do not fill a \(width)×\(height) map")
        self.width = width
        self.height = height
        self.values = values
    }

    /// The sum over channels of item `index` of attributions shaped `(N, C, H, W)`,
    /// `(C, H, W)` or `(H, W)` (Captum sums the channels of a 3-D attribution).
    ///
    /// - Throws: `.invalidArgument` for another rank, an empty map, an index outside the
    ///   batch, or NaN/infinite values (Captum would draw nonsense).
    public init(summingChannelsOf attributions: Tensor, index: Int = 0) throws(ElucidateError) {
        let shape = attributions.shape
        let (batch, channels): (Int, Int)
        switch shape.count {
        case 4: (batch, channels) = (shape[0], shape[1])
        case 3: (batch, channels) = (1, shape[0])
        case 2: (batch, channels) = (1, 1)
        default:
            throw ElucidateError(.invalidArgument,
                "attributions of shape \(shape) cannot be drawn: expected (N, C, H, W), (C, H, W) or (H, W)")
        }
        let height = shape[shape.count - 2], width = shape[shape.count - 1]
        guard batch > 0, channels > 0, height > 0, width > 0 else {
            throw ElucidateError(.invalidArgument, "attributions of shape \(shape) are empty")
        }
        guard index >= 0 && index < batch else {
            throw ElucidateError(.invalidArgument, "item \(index) does not exist: the attributions hold \(batch) item\(batch == 1 ? "" : "s")")
        }
        let plane = width * height
        var sums = [Float](repeating: 0, count: plane)
        var finite = true
        attributions.withUnsafeBufferPointer { a in
            let base = index * channels * plane
            for i in 0..<plane {
                var s = a[base + i]
                for c in 1..<max(channels, 1) { s += a[base + c * plane + i] }
                if !s.isFinite { finite = false }
                sums[i] = s
            }
        }
        guard finite else {
            throw ElucidateError(.invalidArgument, "the attributions of item \(index) contain NaN or infinite values")
        }
        self.init(width: width, height: height, values: sums)
    }

    /// The outcome of `normalized(sign:outlierPercentage:)`.
    public struct Normalized: Sendable {
        /// The normalised map: −1…1 for sign `all`, 0…1 otherwise.
        public let map: AttributionMap
        /// The magnitude that became 1 (before clipping); 0 for a blank map.
        public let threshold: Float
        /// Why the map is blank or degenerate, in words, when it is (Captum raises instead).
        public let warning: String?
    }

    /// Captum's `_normalize_attr(attr, sign, outlier_perc)`: keep the chosen sign
    /// (`positive`: max(v, 0), `negative`: min(v, 0), `absolute-value`: |v|, `all`: v),
    /// find the threshold — the smallest magnitude at which the cumulative sum of the
    /// sorted magnitudes reaches `100 − outlierPercentage` percent of their total —
    /// divide by it (by −threshold for `negative`, so the result is ≥ 0) and clip to −1…1.
    ///
    /// Where Captum fails, this does not: a map with nothing of the chosen sign (or all
    /// zero) becomes all zeros with a warning (Captum: `AssertionError`); a threshold of 0
    /// with some non-zero mass (only possible for `outlierPercentage` 100) is replaced by
    /// the smallest non-zero magnitude, the limit of the threshold as the percentage
    /// approaches 100, so every non-zero value becomes ±1.
    ///
    /// - Precondition: `0 ≤ outlierPercentage ≤ 100` (see `validateOutlierPercentage`).
    public func normalized(sign: VisualizationSign, outlierPercentage: Double) -> Normalized {
        precondition(outlierPercentage >= 0 && outlierPercentage <= 100, "outlier percentage \(outlierPercentage)")
        let filtered: [Float]
        switch sign {
        case .all: filtered = values
        case .positive: filtered = values.map { Swift.max($0, 0) }
        case .negative: filtered = values.map { Swift.min($0, 0) }
        case .absoluteValue: filtered = values.map { abs($0) }
        }
        var threshold = Self.cumulativeSumThreshold(filtered.map { abs($0) }, percentile: 100 - outlierPercentage)
        var warning: String?
        if threshold == 0 {
            let smallest = filtered.lazy.map { abs($0) }.filter { $0 > 0 }.min()
            if let smallest {
                threshold = smallest
            } else {
                let what = if sign == .all || sign == .absoluteValue || values.allSatisfy({ $0 == 0 }) {
                    "the attribution map is all zero"
                } else {
                    "the attribution map has no \(sign == .positive ? "positive" : "negative") values"
                }
                warning = "\(what): sign \(sign.rawValue) draws a blank map"
                return Normalized(map: AttributionMap(width: width, height: height,
                                                      values: [Float](repeating: 0, count: values.count)),
                                  threshold: 0, warning: warning)
            }
        }
        let divisor = sign == .negative ? -threshold : threshold
        let normalized = filtered.map { Swift.min(Swift.max($0 / divisor, -1), 1) }
        return Normalized(map: AttributionMap(width: width, height: height, values: normalized),
                          threshold: threshold, warning: warning)
    }

    /// Captum's `_cumulative_sum_threshold(values, percentile)` for non-negative `values`:
    /// the first sorted value whose float32 running sum is ≥ `total * 0.01 * percentile`.
    public static func cumulativeSumThreshold(_ magnitudes: [Float], percentile: Double) -> Float {
        guard !magnitudes.isEmpty else { return 0 }
        let sorted = magnitudes.sorted()
        var cumulative = [Float](repeating: 0, count: sorted.count)
        var running: Float = 0
        for (i, v) in sorted.enumerated() {
            running += v
            cumulative[i] = running
        }
        // NumPy 2 (NEP 50): float32 scalar * Python float stays float32, the Python float
        // being rounded to float32 first.
        let target = (running * Float(0.01 as Double)) * Float(percentile)
        let index = cumulative.firstIndex { $0 >= target } ?? (sorted.count - 1)
        return sorted[index]
    }

    /// Refuses outlier percentages outside 0…100 (and NaN), as Captum asserts.
    public static func validateOutlierPercentage(_ value: Double) throws(ElucidateError) {
        guard value >= 0 && value <= 100 else {
            throw ElucidateError(.invalidArgument, "the outlier percentage must be between 0 and 100, not \(value)")
        }
    }
}
