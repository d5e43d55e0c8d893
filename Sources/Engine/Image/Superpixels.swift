import ElucidateCore
import ElucidateIO
import Foundation

/// SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art
/// Superpixel Methods", TPAMI 2012) as scikit-image 0.26 computes them for an RGB image
/// called the way LIME users call it:
/// `slic(image, n_segments=N, compactness=c, sigma=0, start_label=0)` with its other
/// defaults (10 k-means iterations, connectivity enforced with minimum and maximum sizes
/// ½ and 3 times the mean segment).
///
/// Every floating-point step is done in the order skimage does it, in double precision, so
/// for a float64 image the labels equal skimage's (the fixtures of
/// `tools/make_superpixel_fixtures.py`) up to the last bit of `pow` and `cbrt`: numpy's
/// vectorised versions (AVX-512) can differ from the C library's and so move the odd pixel
/// that sits on a near tie (3 pixels in 1 of 300 random images tried).
public enum Superpixels {
    /// Segments an image into about `segments` regions of similar colour.
    ///
    /// Like skimage, the image is first stretched so that its smallest sample is 0 and its
    /// largest 1 (nothing for a uniform image), then converted to CIELAB (sRGB, D65, 2°).
    /// Seeds start on a regular grid (so the result may have somewhat fewer or more regions
    /// than asked for), each pixel joins the seed minimising
    /// `(Δy² + Δx²) / step² + |ΔLab|² / compactness²`, and after the iterations every piece
    /// smaller than half a mean segment joins a neighbouring segment, so every segment is one
    /// 4-connected region. As in skimage, an image so noisy that almost every piece is that
    /// small collapses into very few segments.
    ///
    /// - Parameters:
    ///   - image: float RGB `[3, H, W]` (CHW, channels R, G, B), nominally in 0…1.
    ///   - segments: the number of regions wanted, N ≥ 1; N ≥ H·W makes every pixel a region.
    ///   - compactness: > 0; larger values weigh space more than colour, giving squarer regions.
    /// - Returns: `H·W` labels, row-major (pixel (y, x) at `y·W + x`), numbered 0…K−1 in the
    ///   order their first pixel appears.
    /// - Throws: `.invalidArgument` for another shape, a non-finite sample, N < 1 or a
    ///   compactness that is not a positive number.
    public static func slic(_ image: Tensor, segments: Int, compactness: Double = 10) throws(ElucidateError) -> [Int32] {
        guard image.rank == 3, image.shape[0] == 3, image.shape[1] > 0, image.shape[2] > 0 else {
            throw ElucidateError(.invalidArgument, "SLIC needs an RGB image [3, H, W], got \(image.shape)")
        }
        guard segments >= 1 else {
            throw ElucidateError(.invalidArgument, "SLIC needs at least 1 segment, got \(segments)")
        }
        guard compactness > 0, compactness.isFinite else {
            throw ElucidateError(.invalidArgument, "the SLIC compactness must be a positive number, got \(compactness)")
        }
        let height = image.shape[1], width = image.shape[2]
        let samples = image.scalars.map(Double.init)
        guard samples.allSatisfy(\.isFinite) else {
            throw ElucidateError(.invalidArgument, "the image to segment has a NaN or infinite sample")
        }
        let lab = scaledLab(samples, pixels: height * width, scale: 1 / compactness)
        let seeds = SeedGrid(height: height, width: width, count: segments)
        let clusters = cluster(lab, height: height, width: width, seeds: seeds)
        return connectedSegments(clusters, height: height, width: width, seedCount: seeds.count)
    }

    /// CIELAB of every pixel of a CHW image, pixel-major `[L, a, b]` triples multiplied by `scale`,
    /// after stretching the samples to 0…1 as skimage does (it makes compactness mean the
    /// same for any input range).
    static func scaledLab(_ samples: [Double], pixels: Int, scale: Double) -> [Double] {
        let low = samples.min()!, high = samples.max()!
        // The sRGB primaries under D65, and the D65 white (2° observer), as skimage writes them.
        let xyzFromRGB: [Double] = [0.412453, 0.357580, 0.180423,
                                    0.212671, 0.715160, 0.072169,
                                    0.019334, 0.119193, 0.950227]
        let white: [Double] = [0.95047, 1.0, 1.08883]
        func linear(_ v: Double) -> Double {
            v > 0.04045 ? pow((v + 0.055) / 1.055, 2.4) : v / 12.92
        }
        func f(_ t: Double) -> Double {
            t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0
        }
        var lab = [Double](repeating: 0, count: pixels * 3)
        for p in 0..<pixels {
            let rgb = (0..<3).map { c in
                let v = samples[c * pixels + p] - low
                return linear(high == low ? v : v / (high - low))
            }
            let xyz = (0..<3).map { row in
                let m = row * 3
                return f((rgb[0] * xyzFromRGB[m] + rgb[1] * xyzFromRGB[m + 1] + rgb[2] * xyzFromRGB[m + 2]) / white[row])
            }
            lab[p * 3] = (116.0 * xyz[1] - 16.0) * scale
            lab[p * 3 + 1] = 500.0 * (xyz[0] - xyz[1]) * scale
            lab[p * 3 + 2] = 200.0 * (xyz[1] - xyz[2]) * scale
        }
        return lab
    }

    /// The k-means part of SLIC: 10 rounds of assigning each pixel to the best seed within
    /// two grid steps, then moving every seed to the mean position and colour of its pixels.
    /// Returns each pixel's seed index (row-major).
    static func cluster(_ lab: [Double], height: Int, width: Int, seeds: SeedGrid) -> [Int] {
        let count = seeds.count
        // Seeds start with colour 0 (not their pixel's), so the first assignment is purely spatial.
        var centreY = [Double](repeating: 0, count: count), centreX = centreY
        var centreLab = [Double](repeating: 0, count: count * 3)
        for (k, (y, x)) in seeds.points.enumerated() {
            centreY[k] = Double(y)
            centreX[k] = Double(x)
        }
        // A seed that loses all its pixels has no mean (skimage's becomes NaN) and takes no
        // more part.
        var alive = [Bool](repeating: true, count: count)
        let step = Double(max(seeds.stepY, seeds.stepX))
        let spatialWeight = 1.0 / (step * step)
        // skimage sizes the search window from a grid for the seeds actually placed, which
        // can differ from the grid that placed them.
        let window = SeedGrid(height: height, width: width, count: count)
        var labels = [Int](repeating: 0, count: height * width)
        var distance = [Double](repeating: 0, count: height * width)
        for _ in 0..<10 {
            for i in distance.indices { distance[i] = .greatestFiniteMagnitude }
            for k in 0..<count where alive[k] {
                let cy = centreY[k], cx = centreX[k]
                let yMin = Int(max(cy - Double(2 * window.stepY), 0))
                let yMax = Int(min(cy + Double(2 * window.stepY + 1), Double(height)))
                let xMin = Int(max(cx - Double(2 * window.stepX), 0))
                let xMax = Int(min(cx + Double(2 * window.stepX + 1), Double(width)))
                let (l, a, b) = (centreLab[k * 3], centreLab[k * 3 + 1], centreLab[k * 3 + 2])
                for y in yMin..<max(yMin, yMax) {
                    let dy = (cy - Double(y)) * (cy - Double(y))
                    for x in xMin..<max(xMin, xMax) {
                        let p = y * width + x
                        let dx = (cx - Double(x)) * (cx - Double(x))
                        let tl = lab[p * 3] - l, ta = lab[p * 3 + 1] - a, tb = lab[p * 3 + 2] - b
                        let d = (dy + dx) * spatialWeight + (tl * tl + ta * ta + tb * tb)
                        // Strictly smaller: on a tie the lower seed index keeps the pixel.
                        if distance[p] > d {
                            distance[p] = d
                            labels[p] = k
                        }
                    }
                }
            }
            var sums = [Double](repeating: 0, count: count * 5)
            var members = [Int](repeating: 0, count: count)
            for y in 0..<height {
                for x in 0..<width {
                    let p = y * width + x, k = labels[p]
                    members[k] += 1
                    sums[k * 5] += Double(y)
                    sums[k * 5 + 1] += Double(x)
                    for c in 0..<3 { sums[k * 5 + 2 + c] += lab[p * 3 + c] }
                }
            }
            for k in 0..<count where alive[k] {
                guard members[k] > 0 else { alive[k] = false; continue }
                let n = Double(members[k])
                centreY[k] = sums[k * 5] / n
                centreX[k] = sums[k * 5 + 1] / n
                for c in 0..<3 { centreLab[k * 3 + c] = sums[k * 5 + 2 + c] / n }
            }
        }
        return labels
    }

    /// Relabels the clusters so that each label is one 4-connected region: pieces are found
    /// in raster order by a breadth-first search that stops growing at 3 mean segment sizes
    /// (the rest of a bigger piece starts a new label later), and a piece smaller than half
    /// a mean segment takes the label of the last earlier-labelled neighbour the search met.
    static func connectedSegments(_ clusters: [Int], height: Int, width: Int, seedCount: Int) -> [Int32] {
        let meanSize = Double(height * width) / Double(seedCount)
        let minimumSize = Int(0.5 * meanSize), maximumSize = Int(3 * meanSize)
        let unlabelled: Int32 = -1
        var result = [Int32](repeating: unlabelled, count: height * width)
        var queue = [Int](repeating: 0, count: maximumSize)
        var next: Int32 = 0
        // skimage's neighbour order, which decides which neighbour a small piece joins.
        let offsets = [(0, 1), (0, -1), (1, 0), (-1, 0)]
        for start in result.indices where result[start] == unlabelled {
            let cluster = clusters[start]
            var neighbourLabel = next
            result[start] = next
            queue[0] = start
            var size = 1, visited = 0
            search: while visited < size && size < maximumSize {
                let p = queue[visited]
                let (y, x) = (p / width, p % width)
                for (dy, dx) in offsets {
                    let (ny, nx) = (y + dy, x + dx)
                    guard ny >= 0 && ny < height && nx >= 0 && nx < width else { continue }
                    let q = ny * width + nx
                    if clusters[q] == cluster && result[q] == unlabelled {
                        result[q] = next
                        queue[size] = q
                        size += 1
                        if size >= maximumSize { break search }
                    } else if result[q] != unlabelled && result[q] != next {
                        neighbourLabel = result[q]
                    }
                }
                visited += 1
            }
            if size < minimumSize {
                // With no labelled neighbour (only possible for the piece at the top-left
                // corner) the piece keeps `next`, which the next piece, always adjacent to it,
                // shares: the label stays one connected region.
                for i in 0..<size { result[queue[i]] = neighbourLabel }
            } else {
                next += 1
            }
        }
        return result
    }
}

/// Where skimage places about `count` seeds on an H×W image (its `regular_grid` over
/// `(1, H, W)`, whose depth axis of size 1 never fits a step): every `stepY` rows from
/// `startY` and every `stepX` columns from `startX`.
struct SeedGrid: Equatable {
    let height: Int, width: Int
    let startY: Int, stepY: Int, startX: Int, stepX: Int

    init(height: Int, width: Int, count: Int) {
        precondition(height >= 1 && width >= 1 && count >= 1)
        self.height = height
        self.width = width
        guard height * width > count else {
            (startY, stepY, startX, stepX) = (0, 1, 0, 1)
            return
        }
        // A square step when it fits the shorter side; otherwise one line of seeds across the
        // shorter side and all of them along the longer one.
        let square = pow(Double(height * width) / Double(count), 1.0 / 2.0)
        let short = Double(min(height, width)), long = Double(max(height, width))
        let (shortStep, longStep) = short >= square ? (square, square) : (short, long / Double(count))
        let (stepAlongY, stepAlongX) = height <= width ? (shortStep, longStep) : (longStep, shortStep)
        // numpy: start = step // 2, step = round(step) (half to even).
        startY = Int((stepAlongY / 2).rounded(.down))
        stepY = Int(stepAlongY.rounded(.toNearestOrEven))
        startX = Int((stepAlongX / 2).rounded(.down))
        stepX = Int(stepAlongX.rounded(.toNearestOrEven))
    }

    /// The seeds (y, x), row by row.
    var points: [(y: Int, x: Int)] {
        stride(from: startY, to: height, by: stepY).flatMap { y in
            stride(from: startX, to: width, by: stepX).map { x in (y, x) }
        }
    }

    var count: Int {
        (height - startY + stepY - 1) / stepY * ((width - startX + stepX - 1) / stepX)
    }
}
