import CKernels

/// Weighted linear least squares with an intercept, as scikit-learn's
/// `LinearRegression().fit(x, y, sample_weight: weights)` (Captum's KernelShap surrogate):
/// minimises Σ wᵢ (yᵢ − b − xᵢ·β)². Like scikit-learn, it centres x and y on their weighted
/// means, scales each row by √wᵢ and solves for β with an SVD (LAPACKE's dgelsd, singular
/// values below 10⁻⁶ of the largest dropped, scikit-learn's default `tol`), so samples that do
/// not determine every coefficient give the minimum-norm β; then b = ȳ − x̄·β.
///
/// - Parameters: x: n rows of p features; y, weights: n values, weights ≥ 0 with a positive sum.
/// - Returns: the intercept and the p coefficients.
/// - Throws: `.invalidArgument` for mismatched counts, no samples, non-finite values or bad
///   weights; `.internalFailure` when LAPACKE cannot be loaded or the SVD fails.
func weightedLeastSquares(_ x: [[Double]], _ y: [Double], weights: [Double])
    throws(ElucidateError) -> (intercept: Double, coefficients: [Double])
{
    let (meanX, meanY) = try weightedMeans(x, y, weights: weights)
    let rows = x.count, features = meanX.count
    guard features > 0 else { return (meanY, []) }
    var design = [Double](repeating: 0, count: rows * features)
    // dgelsd returns the solution in the first `features` entries of the right-hand side.
    var rhs = [Double](repeating: 0, count: max(rows, features))
    for i in 0..<rows {
        let scale = weights[i].squareRoot()
        for j in 0..<features { design[i * features + j] = scale * (x[i][j] - meanX[j]) }
        rhs[i] = scale * (y[i] - meanY)
    }
    let status = ek_lstsq_f64(Int64(rows), Int64(features), &design, Int64(features), &rhs, 1e-6, nil)
    guard status == EK_OK else { throw LinearAlgebra.error(status) }
    let coefficients = Array(rhs.prefix(features))
    return (meanY - zip(meanX, coefficients).reduce(0) { $0 + $1.0 * $1.1 }, coefficients)
}

/// The weighted means x̄ (p values) and ȳ, after checking the shapes and values the
/// surrogate fits rely on.
func weightedMeans(_ x: [[Double]], _ y: [Double], weights: [Double])
    throws(ElucidateError) -> (x: [Double], y: Double)
{
    let features = x.first?.count ?? 0
    guard !x.isEmpty, x.count == y.count, x.count == weights.count, x.allSatisfy({ $0.count == features }) else {
        throw ElucidateError(.invalidArgument, "a surrogate fit needs as many targets and weights as samples (\(x.count) samples, "
                                 + "\(y.count) targets, \(weights.count) weights), at least one sample and equal-length rows")
    }
    guard weights.allSatisfy({ $0 >= 0 && $0.isFinite }), y.allSatisfy(\.isFinite),
          x.allSatisfy({ $0.allSatisfy(\.isFinite) }) else {
        throw ElucidateError(.invalidArgument, "a surrogate fit needs finite samples and targets and finite weights ≥ 0")
    }
    let total = weights.reduce(0, +)
    guard total > 0 else { throw ElucidateError(.invalidArgument, "a surrogate fit needs a positive total weight") }
    var meanX = [Double](repeating: 0, count: features)
    var meanY = 0.0
    for (row, (target, weight)) in zip(x, zip(y, weights)) {
        meanY += weight * target
        for j in 0..<features { meanX[j] += weight * row[j] }
    }
    return (meanX.map { $0 / total }, meanY / total)
}

/// The LAPACKE loader's view from Swift.
enum LinearAlgebra {
    /// One clear error for a failed solve: the loader's reason when LAPACKE is missing.
    static func error(_ status: ek_status) -> ElucidateError {
        if status == EK_ERR_LAPACK_UNAVAILABLE {
            let reason = Runtime.lapack.error ?? "unknown reason"
            return ElucidateError(.internalFailure, "LAPACKE could not be loaded (install liblapacke): \(reason)")
        }
        if status == EK_ERR_INVALID_ARGUMENT {
            return ElucidateError(.invalidArgument, "least squares: \(String(cString: ek_lapack_status_string(status)))")
        }
        return ElucidateError(.internalFailure, "least squares: \(String(cString: ek_lapack_status_string(status)))")
    }
}
