import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Weighted Lasso with an intercept, as scikit-learn's `Lasso(alpha).fit(x, y, sample_weight)`
/// (which Captum's LIME uses): minimises
/// (1 / (2 Σw)) Σ wᵢ (yᵢ − b − xᵢ·β)² + α ‖β‖₁ by cyclic coordinate descent on the
/// weighted-centred data.
///
/// - Returns: (intercept, coefficients).
func weightedLasso(_ x: [[Double]], _ y: [Double], weights: [Double], alpha: Double,
                   tolerance: Double = 1e-7, maximumIterations: Int = 5000) -> (Double, [Double]) {
    let features = x.first?.count ?? 0
    var matrix = SampleMatrix(rows: x.count, columns: features, values: x.flatMap { $0 })
    return weightedLasso(&matrix, y, weights: weights, alpha: alpha, tolerance: tolerance, maximumIterations: maximumIterations)
}

/// `weightedLasso` on a row-major sample matrix, which it empties once it has its centred
/// columns (so the fit holds one copy of the samples at a time, beside the caller's coalitions).
func weightedLasso(_ x: inout SampleMatrix, _ y: [Double], weights: [Double], alpha: Double,
                   tolerance: Double = 1e-7, maximumIterations: Int = 5000) -> (Double, [Double]) {
    let n = x.rows
    let features = x.columns
    let total = weights.reduce(0, +)
    guard n > 0, total > 0 else { return (0, [Double](repeating: 0, count: features)) }
    let w = weights.map { $0 / total }
    var meanX = [Double](repeating: 0, count: features)
    var meanY = 0.0
    for i in 0..<n {
        meanY += w[i] * y[i]
        for j in 0..<features { meanX[j] += w[i] * x.values[i * features + j] }
    }
    // Column-major centred data.
    var columns = [[Double]](repeating: [Double](repeating: 0, count: n), count: features)
    var squares = [Double](repeating: 0, count: features)
    for j in 0..<features {
        for i in 0..<n {
            columns[j][i] = x.values[i * features + j] - meanX[j]
            squares[j] += w[i] * columns[j][i] * columns[j][i]
        }
    }
    x.values = []
    var residual = (0..<n).map { y[$0] - meanY }
    var beta = [Double](repeating: 0, count: features)
    for _ in 0..<maximumIterations {
        var largest = 0.0
        for j in 0..<features where squares[j] > 0 {
            var rho = 0.0
            for i in 0..<n { rho += w[i] * columns[j][i] * (residual[i] + columns[j][i] * beta[j]) }
            let updated = (rho > alpha ? rho - alpha : rho < -alpha ? rho + alpha : 0) / squares[j]
            let change = updated - beta[j]
            if change != 0 {
                for i in 0..<n { residual[i] -= change * columns[j][i] }
                beta[j] = updated
                largest = max(largest, abs(change))
            }
        }
        if largest < tolerance { break }
    }
    let intercept = meanY - zip(meanX, beta).reduce(0) { $0 + $1.0 * $1.1 }
    return (intercept, beta)
}
