import ElucidateCore
import ElucidateModels
import ElucidateNN

/// EigenCAM (pytorch-grad-cam's `EigenCAM`): no gradients; per image, the layer's activations
/// `[C, h, w]` as a matrix M `[h·w, C]` with each channel's mean subtracted, projected on M's
/// first right singular vector v₁: the raw map `M v₁` `[N, 1, h, w]`.
///
/// Computed as σ₁ u₁ = M v₁ from the top eigenpair of the smaller Gram matrix (M Mᵀ or MᵀM),
/// in double precision with the cyclic Jacobi method, which converges for any spectrum (no
/// eigengap assumption as power iteration needs) to double-precision accuracy: for layer4 of a
/// ResNet that is a 49 × 49 matrix. A singular vector's sign is arbitrary (numpy leaves it to
/// LAPACK); this one is chosen so the map's largest-magnitude entry is positive. pytorch-grad-cam
/// may return the opposite sign, so compare raw maps up to sign; see `CAMPostprocessing` for
/// what that means after its ReLU.
public struct EigenCAM: AttributionMethod {
    /// The layer (a 4-D output `[N, C, h, w]`).
    public var layer: LayerChoice
    /// Inputs per forward pass.
    public var batchSize: Int
    /// Called after each pass with (passes done, `progressTotal`).
    public var progress: AttributionProgress?

    /// EigenCAM of `layer`, `batchSize` inputs per forward pass.
    public init(layer: LayerChoice, batchSize: Int = 16, progress: AttributionProgress? = nil) {
        self.layer = layer
        self.batchSize = batchSize
        self.progress = progress
    }

    public func attribute(_ model: some AttributionModel, inputs: Tensor, targets: [Int]) throws(ElucidateError) -> Attribution {
        let total = progressTotal(inputShape: inputs.shape)
        let values = try layerValues(model, method: "eigen-cam", layer: layer, inputs: inputs, targets: targets,
                                     batchSize: batchSize, spatial: true, passed: { progress?($0, total) })
        return Attribution(values: Self.map(activations: values))
    }

    /// The projection map `[N, 1, h, w]` of activations `[N, C, h, w]`.
    public static func map(activations: Tensor) -> Tensor {
        let (n, c, h, w) = (activations.shape[0], activations.shape[1], activations.shape[2], activations.shape[3])
        let p = h * w
        var out = [Float](repeating: 0, count: n * p)
        activations.withUnsafeBufferPointer { a in
            for row in 0..<n {
                // M[p, c], centred per channel, in double.
                var m = [Double](repeating: 0, count: p * c)
                for channel in 0..<c {
                    let base = (row * c + channel) * p
                    var mean = 0.0
                    for i in 0..<p { mean += Double(a[base + i].isNaN ? 0 : a[base + i]) }
                    mean /= Double(p)
                    for i in 0..<p { m[i * c + channel] = Double(a[base + i].isNaN ? 0 : a[base + i]) - mean }
                }
                let projection = project(m, rows: p, columns: c)
                for i in 0..<p { out[row * p + i] = Float(projection[i]) }
            }
        }
        return Tensor(shape: [n, 1, h, w], values: out)
    }

    /// M v₁ for M `[rows, columns]` (row-major): σ₁ u₁.
    static func project(_ m: [Double], rows: Int, columns: Int) -> [Double] {
        var result: [Double]
        if rows <= columns {
            // M Mᵀ = U Σ² Uᵀ: M v₁ = σ₁ u₁.
            var gram = [Double](repeating: 0, count: rows * rows)
            for i in 0..<rows {
                for j in i..<rows {
                    var s = 0.0
                    for k in 0..<columns { s += m[i * columns + k] * m[j * columns + k] }
                    gram[i * rows + j] = s
                    gram[j * rows + i] = s
                }
            }
            let (value, vector) = topEigenpair(gram, size: rows)
            result = vector.map { $0 * max(value, 0).squareRoot() }
        } else {
            // MᵀM = V Σ² Vᵀ: M v₁ directly.
            var gram = [Double](repeating: 0, count: columns * columns)
            for r in 0..<rows {
                for i in 0..<columns {
                    let mi = m[r * columns + i]
                    if mi == 0 { continue }
                    for j in i..<columns { gram[i * columns + j] += mi * m[r * columns + j] }
                }
            }
            for i in 0..<columns { for j in 0..<i { gram[i * columns + j] = gram[j * columns + i] } }
            let v = topEigenpair(gram, size: columns).vector
            result = (0..<rows).map { r in
                var s = 0.0
                for k in 0..<columns { s += m[r * columns + k] * v[k] }
                return s
            }
        }
        if let largest = result.max(by: { abs($0) < abs($1) }), largest < 0 { result = result.map { -$0 } }
        return result
    }

    /// The largest eigenvalue of the symmetric `size × size` matrix `a` and a unit eigenvector,
    /// by cyclic Jacobi rotations until the off-diagonal mass is negligible.
    static func topEigenpair(_ matrix: [Double], size n: Int) -> (value: Double, vector: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let total = a.reduce(0) { $0 + $1 * $1 }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where i != j { off += a[i * n + j] * a[i * n + j] } }
            if off <= 1e-30 * total || off == 0 { break }
            for p in 0..<(n - 1) {
                for q in (p + 1)..<n {
                    let apq = a[p * n + q]
                    if apq == 0 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let cs = 1 / (t * t + 1).squareRoot(), sn = t * cs
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = cs * akp - sn * akq
                        a[k * n + q] = sn * akp + cs * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = cs * apk - sn * aqk
                        a[q * n + k] = sn * apk + cs * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = cs * vkp - sn * vkq
                        v[k * n + q] = sn * vkp + cs * vkq
                    }
                }
            }
        }
        var best = 0
        for i in 1..<max(n, 1) where a[i * n + i] > a[best * n + best] { best = i }
        return (a[best * n + best], (0..<n).map { v[$0 * n + best] })
    }

    /// Forward passes: ⌈N / batchSize⌉.
    public func progressTotal(inputShape: [Int]) -> Int {
        passCount(rows: inputShape[0], batchSize: batchSize)
    }
}
