import ElucidateCore

extension Quadrature {
    /// The most steps the rule takes. Gauss–Legendre nodes cost n² to compute (numpy's
    /// `leggauss`, which Captum calls, an n × n eigenproblem), so 10 000 — far beyond the 50–300
    /// anyone integrates with — keeps an absurd count an error rather than an endless wait;
    /// the Riemann rules' nodes are cheap, and a million steps is already days of passes.
    public var maximumSteps: Int { self == .gaussLegendre ? 10_000 : 1_000_000 }

    /// Refuses fewer than `minimumSteps` or more than `maximumSteps` steps with the message
    /// every path method gives.
    func requireSteps(_ steps: Int) throws(ElucidateError) {
        guard steps >= minimumSteps else {
            throw ElucidateError(.invalidArgument, "\(rawValue) needs at least \(minimumSteps) steps, got \(steps)")
        }
        guard steps <= maximumSteps else {
            throw ElucidateError(.invalidArgument, "\(rawValue) takes at most \(maximumSteps) steps, got \(steps)")
        }
    }
}

/// The points `x′ + α(x − x′)` on the straight paths from each baseline row x′ to its input
/// row x, in Captum's order: step-major, so point `p` is row `p mod N` at `alphas[p / N]`.
/// Path methods evaluate them a chunk (a range of points) at a time.
struct PathPoints {
    /// The path starts `[N, …]`.
    let baselines: Tensor
    /// `inputs − baselines` `[N, …]`.
    let difference: Tensor
    /// The path positions, one step each.
    let alphas: [Double]

    /// The paths from `baselines` to `inputs` (same shape `[N, …]`) at `alphas`.
    init(inputs: Tensor, baselines: Tensor, alphas: [Double]) {
        self.baselines = baselines
        self.difference = inputs.zipMap(baselines) { $0 - $1 }
        self.alphas = alphas
    }

    /// Rows N.
    var rows: Int { baselines.shape[0] }
    /// Points in all: steps · N.
    var count: Int { alphas.count * rows }
    /// The step (index into `alphas`) of point `point`.
    func step(of point: Int) -> Int { point / rows }
    /// The input row of point `point`.
    func row(of point: Int) -> Int { point % rows }

    /// The points of `range` as one batch `[range.count, …]`.
    func batch(_ range: Range<Int>) -> Tensor {
        let rowSize = baselines.count / rows
        var batch = Tensor(uninitialized: [range.count] + baselines.shape.dropFirst())
        baselines.withUnsafeBufferPointer { base in
            difference.withUnsafeBufferPointer { delta in
                batch.withUnsafeMutableBufferPointer { out in
                    for point in range {
                        let alpha = Float(alphas[step(of: point)])
                        let offset = row(of: point) * rowSize
                        let destination = out.baseAddress! + (point - range.lowerBound) * rowSize
                        for i in 0..<rowSize { destination[i] = base[offset + i] + alpha * delta[offset + i] }
                    }
                }
            }
        }
        return batch
    }

    /// Adds `weight(point) · values[point − range.lowerBound]` to row `point mod rows` of
    /// `totals` for every point of `range`: `values` holds one row per point of the range,
    /// `totals` one per path (`rows` of them), of the same row size.
    static func accumulate(_ values: Tensor, range: Range<Int>, rows: Int, into totals: inout [Float],
                           weight: (Int) -> Float) {
        let rowSize = totals.count / max(1, rows)
        precondition(values.count == range.count * rowSize, "one row of values per point")
        values.withUnsafeBufferPointer { source in
            totals.withUnsafeMutableBufferPointer { total in
                for point in range {
                    let scale = weight(point)
                    let from = source.baseAddress! + (point - range.lowerBound) * rowSize
                    let to = total.baseAddress! + (point % rows) * rowSize
                    for i in 0..<rowSize { to[i] += scale * from[i] }
                }
            }
        }
    }
}
