/// Weighted linear least squares with an intercept: minimises Σ wᵢ (yᵢ − b − xᵢ·β)², by the
/// normal equations in double precision (Cholesky; a vanishing ridge where the samples do
/// not determine every coefficient, which then tends to the minimum-norm solution).
///
/// - Returns: (intercept, coefficients).
func weightedLeastSquares(_ x: [[Double]], _ y: [Double], weights: [Double]) -> (Double, [Double]) {
    let features = x.first?.count ?? 0
    let size = features + 1
    var normal = [Double](repeating: 0, count: size * size)
    var rhs = [Double](repeating: 0, count: size)
    for (row, (target, weight)) in zip(x, zip(y, weights)) {
        let augmented = [1.0] + row
        for i in 0..<size {
            let wi = weight * augmented[i]
            rhs[i] += wi * target
            for j in 0...i { normal[i * size + j] += wi * augmented[j] }
        }
    }
    for i in 0..<size { for j in 0..<i { normal[j * size + i] = normal[i * size + j] } }
    let scale = (0..<size).map { normal[$0 * size + $0] }.max() ?? 1
    var ridge = 0.0
    while true {
        if let solution = choleskySolve(normal, rhs, size: size, ridge: ridge) {
            return (solution[0], Array(solution.dropFirst()))
        }
        ridge = ridge == 0 ? max(scale, 1e-300) * 1e-12 : ridge * 10
    }
}

/// Solves (A + ridge·I) x = b for a symmetric positive definite A, or nil if it is not.
private func choleskySolve(_ a: [Double], _ b: [Double], size n: Int, ridge: Double) -> [Double]? {
    var l = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in 0...i {
            var sum = a[i * n + j] + (i == j ? ridge : 0)
            for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
            if i == j {
                guard sum > 1e-12 * max(1, abs(a[i * n + i])) else { return nil }
                l[i * n + i] = sum.squareRoot()
            } else {
                l[i * n + j] = sum / l[j * n + j]
            }
        }
    }
    var z = b
    for i in 0..<n {
        for k in 0..<i { z[i] -= l[i * n + k] * z[k] }
        z[i] /= l[i * n + i]
    }
    for i in stride(from: n - 1, through: 0, by: -1) {
        for k in (i + 1)..<n { z[i] -= l[k * n + i] * z[k] }
        z[i] /= l[i * n + i]
    }
    return z
}
