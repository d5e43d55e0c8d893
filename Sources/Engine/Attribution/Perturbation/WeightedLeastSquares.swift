import CKernels
import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

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
    var matrix = try SampleMatrix(rows: x, targets: y.count, weights: weights.count)
    return try weightedLeastSquares(&matrix, y, weights: weights)
}

/// `weightedLeastSquares` on a row-major sample matrix, which it overwrites with the centred,
/// weighted design (the surrogates' largest allocation is made once).
func weightedLeastSquares(_ x: inout SampleMatrix, _ y: [Double], weights: [Double])
    throws(ElucidateError) -> (intercept: Double, coefficients: [Double])
{
    let (meanX, meanY) = try weightedMeans(x, y, weights: weights)
    let rows = x.rows, features = x.columns
    guard features > 0 else { return (meanY, []) }
    // dgelsd returns the solution in the first `features` entries of the right-hand side.
    var rhs = [Double](repeating: 0, count: max(rows, features))
    x.values.withUnsafeMutableBufferPointer { design in
        for i in 0..<rows {
            let scale = weights[i].squareRoot()
            for j in 0..<features { design[i * features + j] = scale * (design[i * features + j] - meanX[j]) }
            rhs[i] = scale * (y[i] - meanY)
        }
    }
    let status = ek_lstsq_f64(Int64(rows), Int64(features), &x.values, Int64(features), &rhs, 1e-6, nil)
    guard status == EK_OK else { throw LinearAlgebra.error(status) }
    let coefficients = Array(rhs.prefix(features))
    return (meanY - zip(meanX, coefficients).reduce(0) { $0 + $1.0 * $1.1 }, coefficients)
}

/// Samples × features doubles in one row-major array: the surrogate fits' design matrix.
struct SampleMatrix {
    let rows: Int
    let columns: Int
    var values: [Double]

    init(rows: Int, columns: Int, values: [Double]) {
        precondition(values.count == rows * columns, "\(values.count) values for \(rows) × \(columns)")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    /// From rows of equal length, refusing what `weightedMeans` refuses about shapes.
    init(rows x: [[Double]], targets: Int, weights: Int) throws(ElucidateError) {
        let features = x.first?.count ?? 0
        guard !x.isEmpty, x.count == targets, x.count == weights, x.allSatisfy({ $0.count == features }) else {
            throw ElucidateError(.invalidArgument, "a surrogate fit needs as many targets and weights as samples (\(x.count) samples, "
                                     + "\(targets) targets, \(weights) weights), at least one sample and equal-length rows")
        }
        self.init(rows: x.count, columns: features, values: x.flatMap { $0 })
    }

    /// On/off indicators (1 or 0) of `coalitions`, `columns` per sample.
    init(indicators coalitions: [Bool], columns: Int) {
        self.init(rows: coalitions.count / max(1, columns), columns: columns, values: coalitions.map { $0 ? 1.0 : 0.0 })
    }
}

/// The weighted means x̄ (p values) and ȳ, after checking the shapes and values the
/// surrogate fits rely on.
func weightedMeans(_ x: SampleMatrix, _ y: [Double], weights: [Double])
    throws(ElucidateError) -> (x: [Double], y: Double)
{
    let features = x.columns
    guard x.rows > 0, x.rows == y.count, x.rows == weights.count else {
        throw ElucidateError(.invalidArgument, "a surrogate fit needs as many targets and weights as samples (\(x.rows) samples, "
                                 + "\(y.count) targets, \(weights.count) weights), at least one sample and equal-length rows")
    }
    guard weights.allSatisfy({ $0 >= 0 && $0.isFinite }), y.allSatisfy(\.isFinite), x.values.allSatisfy(\.isFinite) else {
        throw ElucidateError(.invalidArgument, "a surrogate fit needs finite samples and targets and finite weights ≥ 0")
    }
    let total = weights.reduce(0, +)
    guard total > 0 else { throw ElucidateError(.invalidArgument, "a surrogate fit needs a positive total weight") }
    var meanX = [Double](repeating: 0, count: features)
    var meanY = 0.0
    for (i, (target, weight)) in zip(y, weights).enumerated() {
        meanY += weight * target
        for j in 0..<features { meanX[j] += weight * x.values[i * features + j] }
    }
    return (meanX.map { $0 / total }, meanY / total)
}

/// The memory a surrogate fit over all samples at once (KernelSHAP, LIME) needs, checked
/// against `MemoryBudget` before anything is allocated.
enum SurrogateMemory {
    /// Bytes for `samples` samples of `features` features, per input row (rows are fitted one
    /// after another): 17 per sample and feature (the coalitions, 1; the sample matrix, 8; the
    /// centred copy the fit makes — LAPACKE's column-major transpose or the Lasso's columns —
    /// 8), 48 per sample (scores, targets, weights, residuals), the p × p work of the solver
    /// and 1 MiB; nil when that overflows.
    static func bytes(samples: Int, features: Int) -> Int? {
        let p = max(1, features)
        guard let matrix = checkedProduct(samples, p).flatMap({ checkedProduct($0, 17) }),
              let perSample = checkedProduct(samples, 48), let square = checkedProduct(p, p * 16 + 512) else { return nil }
        let (sum1, o1) = matrix.addingReportingOverflow(perSample)
        let (sum2, o2) = sum1.addingReportingOverflow(square + (1 << 20))
        return o1 || o2 ? nil : sum2
    }

    /// The most samples of `features` features that fit in `budget` bytes (and, for a
    /// least-squares fit, in LAPACK's 32-bit indices: samples × features < 2³¹).
    static func maximumSamples(features: Int, budget: Int, leastSquares: Bool) -> Int {
        let p = max(1, features)
        let fixed = p * (p * 16 + 512) + (1 << 20)
        var most = max(0, budget - fixed) / (17 * p + 48)
        if leastSquares { most = min(most, Int(Int32.max) / p) }
        return most
    }

    /// Throws when `samples` samples of `features` features would not fit: how much they need,
    /// the budget and where it comes from, and the most samples that fit.
    static func check(_ method: String, samples: Int, features: Int, leastSquares: Bool) throws(ElucidateError) {
        let budget = try MemoryBudget.current()
        let needed = bytes(samples: samples, features: features)
        let lapackLimit = leastSquares && (checkedProduct(samples, max(1, features)).map { $0 > Int(Int32.max) } ?? true)
        if let needed, needed <= budget.bytes, !lapackLimit { return }
        let most = maximumSamples(features: features, budget: budget.bytes, leastSquares: leastSquares)
        let need = needed.map { "about \(MemoryBudget.format($0))" } ?? "more memory than can be counted"
        var message = "\(method) with \(samples) samples of \(features) features needs \(need) for its surrogate fit "
            + "(every sample × feature at once)"
        if let needed, needed <= budget.bytes {
            message += ", and LAPACK's 32-bit indices limit samples × features to \(Int32.max)"
        } else {
            message += ", more than the memory budget of \(MemoryBudget.format(budget.bytes)) (\(budget.origin))"
        }
        throw ElucidateError(.invalidArgument, message + "; at most \(most) samples fit")
    }
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
