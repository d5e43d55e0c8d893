import ElucidateCore
import ElucidateModels

/// Deletion and insertion (Petsiuk et al., RISE, 2018), defined exactly so that results
/// compare across tools: pixels go in `PixelOrder`; at step k = 0…S the first
/// `PixelOrder.count(step: k, of: S, pixels: H·W)` pixels are replaced in every channel by the
/// baseline (deletion) or revealed, from an all-baseline image, as the input's (insertion);
/// the score of each step is the target's softmax probability; the AUC is the trapezoid rule
/// over the S + 1 scores equally spaced on [0, 1].
public struct PixelRemoval: Sendable {
    /// Which way the pixels go.
    public enum Direction: String, Sendable, CaseIterable {
        /// Remove the most important pixels first: a faithful map makes the score fall fast
        /// (lower AUC is better).
        case deletion
        /// Reveal the most important pixels first: a faithful map makes the score rise fast
        /// (higher AUC is better).
        case insertion
    }

    /// Deletion or insertion.
    public var direction: Direction
    /// S, the number of steps (S + 1 scores); at least 1, at most the pixel count H·W.
    public var steps: Int
    /// What removed pixels become, or insertion's starting image.
    public var baseline: RemovalBaseline
    /// Masked images per model call (at least 1).
    public var batchSize: Int

    /// A metric with `steps` (default 50) and `batchSize` (default 16); the baseline defaults
    /// to 0 for deletion and RISE's blur for insertion.
    public init(_ direction: Direction, steps: Int = 50, baseline: RemovalBaseline? = nil, batchSize: Int = 16) {
        self.direction = direction
        self.steps = steps
        self.baseline = baseline ?? (direction == .deletion ? .constant(0) : .blur)
        self.batchSize = batchSize
    }

    /// The curve for one input `[1, C, H, W]`, its map (`[1, C', H, W]` or `[C', H, W]`, any
    /// channel count: only the per-pixel sum counts) and the class `target`.
    public func curve(_ classifier: Classifier, input: Tensor, attributions: Tensor,
                      target: Int) throws(ElucidateError) -> RemovalCurve {
        guard steps >= 1 else { throw ElucidateError(.invalidArgument, "--steps must be at least 1") }
        guard batchSize >= 1 else { throw ElucidateError(.invalidArgument, "--batch-size must be at least 1") }
        guard input.rank == 4, input.shape[0] == 1 else {
            throw ElucidateError(.invalidArgument, "deletion and insertion take one input [1, C, H, W], got \(input.shape)")
        }
        guard Array(attributions.shape.suffix(2)) == Array(input.shape.suffix(2)) else {
            throw ElucidateError(.invalidArgument,
                                 "the attributions \(attributions.shape) do not cover the input's \(input.shape[2])×\(input.shape[3]) pixels (deletion and insertion need a map per pixel)")
        }
        guard (0..<classifier.classes).contains(target) else {
            throw ElucidateError(.invalidArgument, "target \(target) is out of range: the model has \(classifier.classes) classes")
        }
        guard steps <= input.shape[2] * input.shape[3] else {
            // More steps than pixels only repeats points (and a huge count would be a huge curve).
            throw ElucidateError(.invalidArgument, "--steps must be at most the number of pixels (\(input.shape[2] * input.shape[3]))")
        }
        let order = try PixelOrder(attributions: attributions).indices
        let background = try baseline.image(for: input)
        let (start, end) = direction == .deletion ? (input.scalars, background.scalars) : (background.scalars, input.scalars)
        let channels = input.shape[1]
        let plane = input.shape[2] * input.shape[3]

        var scores: [Float] = []
        scores.reserveCapacity(steps + 1)
        var image = start
        var changed = 0  // pixels of `order` already taken from `end`
        var step = 0
        while step <= steps {
            let rows = min(batchSize, steps + 1 - step)
            var batch: [Float] = []
            batch.reserveCapacity(rows * image.count)
            for k in step..<(step + rows) {
                let count = PixelOrder.count(step: k, of: steps, pixels: plane)
                for pixel in order[changed..<count] {
                    for channel in 0..<channels { image[channel * plane + pixel] = end[channel * plane + pixel] }
                }
                changed = count
                batch += image
            }
            let logits = try classifier.logits(Tensor(shape: [rows] + Array(input.shape.dropFirst()), values: batch))
            let probabilities = logits.softmax()
            for row in 0..<rows { scores.append(probabilities[row, target]) }
            step += rows
        }
        return RemovalCurve(scores: scores)
    }
}

/// The scores of a deletion or insertion run and their area.
public struct RemovalCurve: Sendable, Equatable {
    /// The target's softmax probability at steps 0…S (S + 1 values).
    public var scores: [Float]

    /// The curve of these S + 1 scores (S ≥ 1).
    public init(scores: [Float]) { self.scores = scores }

    /// The trapezoid rule over the scores equally spaced on [0, 1] (`numpy.trapezoid(y, dx=1/S)`),
    /// in double precision.
    public var auc: Double {
        guard scores.count > 1 else { return scores.first.map(Double.init) ?? 0 }
        let values = scores.map(Double.init)
        let inner = values.reduce(0, +) - (values[0] + values[values.count - 1]) / 2
        return inner / Double(values.count - 1)
    }
}
