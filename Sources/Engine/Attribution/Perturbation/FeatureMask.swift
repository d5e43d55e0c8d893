import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Groups of input elements that perturbation methods switch on and off together: one
/// integer id per element, broadcastable to the inputs `[N, C, H, W]` (e.g. `[1, 1, H, W]`
/// for groups of pixels shared by every channel and input).
public struct FeatureMask: Sendable, Equatable {
    /// The mask's shape, broadcastable to the inputs `[N, C, H, W]` (rank 4 or less).
    public let shape: [Int]
    /// One feature id per element of `shape`, in C order: 0…K−1, every id used.
    public let ids: [Int32]

    /// - Throws: when `ids` does not fill `shape`, or the ids are not 0…K−1 with none missing
    ///   (a gap would be a feature that covers nothing; Captum would attribute to it anyway).
    public init(shape: [Int], ids: [Int32]) throws(ElucidateError) {
        guard shape.reduce(1, *) == ids.count, !ids.isEmpty else {
            throw ElucidateError(.invalidArgument, "a feature mask of shape \(shape) needs \(shape.reduce(1, *)) ids, got \(ids.count)")
        }
        guard shape.count <= 4 else {
            throw ElucidateError(.invalidArgument, "a feature mask has at most 4 dimensions, got \(shape)")
        }
        let present = Set(ids)
        let largest = present.max()!
        if let negative = present.min(), negative < 0 {
            throw ElucidateError(.invalidArgument, "feature mask ids must be 0…K−1; the mask has the negative id \(negative)")
        }
        if present.count != Int(largest) + 1 {
            let missing = (0...largest).lazy.filter { !present.contains($0) }.prefix(5).map(String.init)
            throw ElucidateError(.invalidArgument, "feature mask ids must be 0…K−1 with none missing; the mask has ids up to "
                                 + "\(largest) but not \(missing.joined(separator: ", "))"
                                 + (present.count + 5 < Int(largest) + 1 ? ", …" : ""))
        }
        self.shape = shape
        self.ids = ids
    }

    /// `cells` × `cells` equal rectangles over an H × W image (row-major ids), shared by
    /// every channel: element (y, x) belongs to cell (⌊y·cells/H⌋, ⌊x·cells/W⌋).
    public static func grid(_ cells: Int, height: Int, width: Int) throws(ElucidateError) -> FeatureMask {
        guard cells >= 1, cells <= height, cells <= width else {
            throw ElucidateError(.invalidArgument, "a grid of \(cells)×\(cells) cells does not fit \(height)×\(width)")
        }
        var ids = [Int32](repeating: 0, count: height * width)
        for y in 0..<height {
            for x in 0..<width { ids[y * width + x] = Int32((y * cells / height) * cells + x * cells / width) }
        }
        return try FeatureMask(shape: [1, 1, height, width], ids: ids)
    }

    /// The ids for one input row `[C, H, W]` of a batch `inputShape`, broadcast.
    func expanded(row: Int, inputShape: [Int]) throws(ElucidateError) -> [Int32] {
        let padded = [Int](repeating: 1, count: 4 - shape.count) + shape
        for d in 0..<4 where padded[d] != 1 && padded[d] != inputShape[d] {
            throw ElucidateError(.invalidArgument, "the feature mask \(shape) does not broadcast to the input \(inputShape)")
        }
        let (c, h, w) = (inputShape[1], inputShape[2], inputShape[3])
        var strides = [0, 0, 0, 0]
        var running = 1
        for d in stride(from: 3, through: 0, by: -1) {
            strides[d] = padded[d] == 1 ? 0 : running
            running *= padded[d]
        }
        var result = [Int32](repeating: 0, count: c * h * w)
        let rowBase = row * strides[0]
        var i = 0
        for ci in 0..<c {
            for yi in 0..<h {
                let base = rowBase + ci * strides[1] + yi * strides[2]
                for xi in 0..<w {
                    result[i] = ids[base + xi * strides[3]]
                    i += 1
                }
            }
        }
        return result
    }
}

/// Writes the row `background` (`count` floats) to `out`, then the elements of each of
/// `features` (indices into `members`) from the row `source`: a perturbed copy of one input.
func compose(_ features: some Sequence<Int>, members: [[Int]], from source: UnsafePointer<Float>,
             over background: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    out.update(from: background, count: count)
    for feature in features {
        for element in members[feature] { out[element] = source[element] }
    }
}

/// Gives every element of feature f (`members[f]`) the value `value(f)` in `values`, from `offset`.
func spread(_ value: (Int) -> Float, over members: [[Int]], into values: inout [Float], offset: Int) {
    for (feature, group) in members.enumerated() {
        let v = value(feature)
        for element in group { values[offset + element] = v }
    }
}

/// The distinct ids of a row's mask in increasing order, and each element's index into them.
func featureGroups(_ ids: [Int32]) -> (features: [Int32], members: [[Int]]) {
    let features = Array(Set(ids)).sorted()
    var index: [Int32: Int] = [:]
    for (i, f) in features.enumerated() { index[f] = i }
    var members = [[Int]](repeating: [], count: features.count)
    for (element, id) in ids.enumerated() { members[index[id]!].append(element) }
    return (features, members)
}

extension FeatureMask {
    /// For inputs whose rows are each repeated `times` times (a, a, b, b): a mask with one
    /// row per input repeats its rows alike; a mask shared by every row stays as it is.
    public func repeatingRows(_ times: Int) -> FeatureMask {
        let padded = [Int](repeating: 1, count: 4 - shape.count) + shape
        guard padded[0] > 1, times > 1 else { return self }
        let rowSize = ids.count / padded[0]
        var repeated: [Int32] = []
        repeated.reserveCapacity(ids.count * times)
        for row in 0..<padded[0] {
            for _ in 0..<times { repeated += ids[(row * rowSize)..<((row + 1) * rowSize)] }
        }
        // Same ids, more rows: still 0…K−1, so this cannot throw.
        return try! FeatureMask(shape: [padded[0] * times] + padded.dropFirst(), ids: repeated)
    }
}

/// A method over groups of a `mask` measured from a `baseline`: repeating its inputs
/// repeats per-input masks and baselines alike (so a noise tunnel can wrap it).
public protocol FeatureMaskAttributionMethod: BaselineAttributionMethod {
    /// The groups of input elements switched together.
    var mask: FeatureMask { get set }
}

extension FeatureMaskAttributionMethod {
    /// The number of features (distinct mask ids) of each input row of a batch `inputShape`.
    func featureCounts(inputShape: [Int]) throws(ElucidateError) -> [Int] {
        var counts: [Int] = []
        for row in 0..<inputShape[0] { counts.append(Set(try mask.expanded(row: row, inputShape: inputShape)).count) }
        return counts
    }

    public func repeatingPerInputSettings(_ times: Int) -> Self {
        var copy = self
        copy.baseline = baseline.repeatingRows(times)
        copy.mask = mask.repeatingRows(times)
        return copy
    }
}
