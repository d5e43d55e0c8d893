import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN
import Foundation

/// How Integrated Gradients approximates its path integral ∫₀¹ f(α) dα: evaluation points
/// α and weights w with ∫ ≈ Σ wᵢ f(αᵢ).
public enum Quadrature: String, Sendable, CaseIterable {
    /// Gauss–Legendre nodes and weights mapped to [0, 1] (Captum's default, `gausslegendre`).
    case gaussLegendre = "gausslegendre"
    /// n equal weights 1/n at α = 0 … 1 − 1/n (`riemann-left`).
    case riemannLeft = "riemann-left"
    /// n equal weights 1/n at α = 1/n … 1 (`riemann-right`).
    case riemannRight = "riemann-right"
    /// n equal weights 1/n at the midpoints α = 1/(2n) … 1 − 1/(2n) (`riemann-middle`).
    case riemannMiddle = "riemann-middle"
    /// n points α = 0 … 1, weights 1/(n−1) halved at both ends, summing to 1 (`riemann-trapezoid`).
    case riemannTrapezoid = "riemann-trapezoid"

    /// The smallest number of steps the rule accepts.
    public var minimumSteps: Int { self == .gaussLegendre || self == .riemannMiddle ? 1 : 2 }

    /// Points α in [0, 1] and weights, for `steps` evaluations.
    ///
    /// Riemann points follow Captum. Trapezoid weights are the true trapezoid rule's
    /// (1/(n−1), halved at both ends, summing to 1); Captum's sum to (n−1)/n, so Captum's
    /// trapezoid attributions are Elucidate's times (n−1)/n.
    public func nodes(steps n: Int) -> (alphas: [Double], weights: [Double]) {
        precondition(n >= minimumSteps, "\(rawValue) needs at least \(minimumSteps) steps")
        let d = Double(n)
        switch self {
        case .gaussLegendre:
            let (x, w) = Quadrature.legendre(n)
            return (x.map { 0.5 * ($0 + 1) }, w.map { 0.5 * $0 })
        case .riemannLeft:
            return (linspace(0, 1 - 1 / d, n), Array(repeating: 1 / d, count: n))
        case .riemannRight:
            return (linspace(1 / d, 1, n), Array(repeating: 1 / d, count: n))
        case .riemannMiddle:
            return (linspace(1 / (2 * d), 1 - 1 / (2 * d), n), Array(repeating: 1 / d, count: n))
        case .riemannTrapezoid:
            var weights = Array(repeating: 1 / (d - 1), count: n)
            weights[0] /= 2
            weights[n - 1] /= 2
            return (linspace(0, 1, n), weights)
        }
    }

    private func linspace(_ start: Double, _ end: Double, _ n: Int) -> [Double] {
        n == 1 ? [start] : (0..<n).map { start + (end - start) * Double($0) / Double(n - 1) }
    }

    /// Gauss–Legendre nodes on [−1, 1] in ascending order and their weights (Newton's method
    /// on the Legendre recurrence, as numpy's `leggauss` gives to double precision).
    static func legendre(_ n: Int) -> ([Double], [Double]) {
        var nodes = [Double](repeating: 0, count: n)
        var weights = [Double](repeating: 0, count: n)
        for i in 0..<(n + 1) / 2 {
            var x = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
            var derivative = 0.0
            for _ in 0..<100 {
                var p0 = 1.0, p1 = x
                if n == 1 { p1 = x; p0 = 1 } else {
                    for k in 2...n {
                        let pk = ((2 * Double(k) - 1) * x * p1 - (Double(k) - 1) * p0) / Double(k)
                        p0 = p1
                        p1 = pk
                    }
                }
                // p1 = P_n(x), p0 = P_{n−1}(x)
                derivative = Double(n) * (x * p1 - p0) / (x * x - 1)
                let step = p1 / derivative
                x -= step
                if abs(step) < 1e-15 { break }
            }
            let weight = 2 / ((1 - x * x) * derivative * derivative)
            nodes[i] = -x
            nodes[n - 1 - i] = x
            weights[i] = weight
            weights[n - 1 - i] = weight
        }
        return (nodes, weights)
    }
}
