import ElucidateCore
import ElucidateNN

/// One layer-wise relevance propagation rule for a linear layer (convolution or fully
/// connected), as Zennit 0.5.1 defines it (`zennit/rules.py`).
///
/// Every rule maps the relevance `R` at the layer's output (the output's shape) to the
/// relevance at its input (the input's shape) as a modified gradient:
/// `R_in = Σ_terms x' ⊙ W'ᵀ (R / s(z))`, with `z` the sum of the modified forward passes
/// `W'·x' + b'` and `s` Zennit's sign-aware stabilizer `s(z) = z + ε·sign(z)`, sign(0) = +1.
/// Notation: `x⁺ = max(x, 0)`, `x⁻ = min(x, 0)`, alike for weights `W` and biases `b`.
public enum LRPRule: Sendable, Equatable {
    /// Epsilon (LRP-ε; ε is its own stabilizer): `z = W x + b`, `R_in = x ⊙ Wᵀ(R / s_ε(z))`.
    case epsilon(Float)
    /// ZPlus (α1β0 allowing negative inputs): `z = W⁺x⁺ + b⁺ + W⁻x⁻`,
    /// `R_in = x⁺ ⊙ W⁺ᵀg + x⁻ ⊙ W⁻ᵀg` with `g = R / s(z)`.
    case zPlus
    /// Generalised Gamma(γ): with `Wp = W + γW⁺`, `bp = b + γb⁺`, `Wn = W + γW⁻`, `bn = b + γb⁻`:
    /// `zp = Wp x⁺ + bp + Wn x⁻`, `zn = Wn x⁺ + bn + Wp x⁻`; where the plain output `W x + b`
    /// is > 0, `gp = R / s(zp)` (else 0); where it is < 0, `gn = R / s(zn)` (else 0);
    /// `R_in = x⁺ ⊙ (Wpᵀgp + Wnᵀgn) + x⁻ ⊙ (Wnᵀgp + Wpᵀgn)`.
    case gamma(Float)
    /// AlphaBeta(α, β): `zp = W⁺x⁺ + b⁺ + W⁻x⁻`, `zn = W⁻x⁺ + b⁻ + W⁺x⁻`,
    /// `R_in = α(x⁺ ⊙ W⁺ᵀgp + x⁻ ⊙ W⁻ᵀgp) − β(x⁺ ⊙ W⁻ᵀgn + x⁻ ⊙ W⁺ᵀgn)`, `gp = R/s(zp)`,
    /// `gn = R/s(zn)`.
    case alphaBeta(alpha: Float, beta: Float)
    /// Flat: all-ones weights and inputs, no bias: `z = 1·1`, `R_in = 1ᵀ(R / s(z))`.
    case flat
    /// ZBox with per-input-channel bounds `low`, `high` (one value each, or one per channel):
    /// `z = (W x + b) − (W⁺ l + b⁺) − (W⁻ h + b⁻)`,
    /// `R_in = x ⊙ Wᵀg − l ⊙ W⁺ᵀg − h ⊙ W⁻ᵀg`, `g = R / s(z)`.
    case zBox(low: [Float], high: [Float])
}

/// A linear layer as the rules see it: its weight and bias and how to run it with modified ones.
struct LRPAffineLayer {
    /// The layer's (folded) weight.
    let weight: Tensor
    /// The layer's (folded) bias, nil for none.
    let bias: Tensor?
    /// `W'·x + b'` for a modified weight and bias.
    let forward: (_ input: Tensor, _ weight: Tensor, _ bias: Tensor?) throws(ElucidateError) -> Tensor
    /// `W'ᵀ·g` with the input's shape.
    let transpose: (_ gradient: Tensor, _ weight: Tensor, _ inputShape: [Int]) throws(ElucidateError) -> Tensor

    /// A convolution (its activation ignored).
    init(_ conv: Conv2d) {
        weight = conv.weight
        bias = conv.bias
        forward = { x, w, b throws(ElucidateError) in
            try Conv2d(weight: w, bias: b, stride: conv.stride, padding: conv.padding, dilation: conv.dilation)(x)
        }
        transpose = { g, w, shape throws(ElucidateError) in
            try Conv2d(weight: w, bias: nil, stride: conv.stride, padding: conv.padding, dilation: conv.dilation)
                .transposedProduct(g, inputShape: shape)
        }
    }

    /// A fully connected layer `[N, in] → [N, out]`.
    init(_ linear: Linear) {
        weight = linear.weight
        bias = linear.bias
        forward = { x, w, b throws(ElucidateError) in try Linear(weight: w, bias: b)(x) }
        transpose = { g, w, _ throws(ElucidateError) in try Linear(weight: w, bias: nil).transposedProduct(g) }
    }
}

extension LRPRule {
    /// The relevance at `input` of `layer` for relevance `relevance` at its output; `stabilizer`
    /// is used by every rule but `.epsilon`, which carries its own.
    func propagate(_ relevance: Tensor, through layer: LRPAffineLayer, input x: Tensor,
                   stabilizer: Float) throws(ElucidateError) -> Tensor {
        let w = layer.weight, b = layer.bias
        let shape = x.shape
        func divide(_ r: Tensor, _ z: Tensor, _ eps: Float) -> Tensor {
            r.zipMap(z) { r, z in r / (z + (z >= 0 ? eps : -eps)) }
        }
        func fwd(_ x: Tensor, _ w: Tensor, _ b: Tensor?) throws(ElucidateError) -> Tensor {
            try layer.forward(x, w, b)
        }
        func back(_ g: Tensor, _ w: Tensor) throws(ElucidateError) -> Tensor {
            try layer.transpose(g, w, shape)
        }
        let xp = x.map { max($0, 0) }, xn = x.map { min($0, 0) }
        let wp = w.map { max($0, 0) }, wn = w.map { min($0, 0) }
        let bp = b?.map { max($0, 0) }, bn = b?.map { min($0, 0) }
        switch self {
        case .epsilon(let eps):
            let g = divide(relevance, try fwd(x, w, b), eps)
            return x.multiplying(try back(g, w))
        case .zPlus:
            let z = try fwd(xp, wp, bp).adding(try fwd(xn, wn, nil))
            let g = divide(relevance, z, stabilizer)
            return xp.multiplying(try back(g, wp)).adding(xn.multiplying(try back(g, wn)))
        case .gamma(let gamma):
            let wPos = w.zipMap(wp) { $0 + gamma * $1 }, wNeg = w.zipMap(wn) { $0 + gamma * $1 }
            let bPos = b.map { b in b.zipMap(bp!) { $0 + gamma * $1 } }
            let bNeg = b.map { b in b.zipMap(bn!) { $0 + gamma * $1 } }
            let plain = try fwd(x, w, b)
            let zp = try fwd(xp, wPos, bPos).adding(try fwd(xn, wNeg, nil))
            let zn = try fwd(xp, wNeg, bNeg).adding(try fwd(xn, wPos, nil))
            let gp = divide(relevance, zp, stabilizer).zipMap(plain) { $1 > 0 ? $0 : 0 }
            let gn = divide(relevance, zn, stabilizer).zipMap(plain) { $1 < 0 ? $0 : 0 }
            let positive = try back(gp, wPos).adding(try back(gn, wNeg))
            let negative = try back(gp, wNeg).adding(try back(gn, wPos))
            return xp.multiplying(positive).adding(xn.multiplying(negative))
        case .alphaBeta(let alpha, let beta):
            let zp = try fwd(xp, wp, bp).adding(try fwd(xn, wn, nil))
            let zn = try fwd(xp, wn, bn).adding(try fwd(xn, wp, nil))
            let gp = divide(relevance, zp, stabilizer), gn = divide(relevance, zn, stabilizer)
            let activating = xp.multiplying(try back(gp, wp)).adding(xn.multiplying(try back(gp, wn)))
            let inhibiting = xp.multiplying(try back(gn, wn)).adding(xn.multiplying(try back(gn, wp)))
            return activating.zipMap(inhibiting) { alpha * $0 - beta * $1 }
        case .flat:
            let ones = Tensor(shape: w.shape, repeating: 1)
            let z = try fwd(Tensor(shape: shape, repeating: 1), ones, nil)
            return try back(divide(relevance, z, stabilizer), ones)
        case .zBox(let low, let high):
            let l = try Self.perChannel(low, like: x, name: "low"), h = try Self.perChannel(high, like: x, name: "high")
            let z = try fwd(x, w, b).zipMap(try fwd(l, wp, bp)) { $0 - $1 }.zipMap(try fwd(h, wn, bn)) { $0 - $1 }
            let g = divide(relevance, z, stabilizer)
            let kept = x.multiplying(try back(g, w))
            return kept.zipMap(l.multiplying(try back(g, wp))) { $0 - $1 }
                .zipMap(h.multiplying(try back(g, wn))) { $0 - $1 }
        }
    }

    /// `values` (one, or one per channel of `x` `[N, C, …]`) broadcast to `x`'s shape.
    static func perChannel(_ values: [Float], like x: Tensor, name: String) throws(ElucidateError) -> Tensor {
        let channels = x.shape[1]
        guard values.count == 1 || values.count == channels else {
            throw ElucidateError(.invalidArgument,
                                 "--\(name) needs 1 or \(channels) values (one per input channel), got \(values.count)")
        }
        let plane = x.shape.dropFirst(2).reduce(1, *)
        var out = Tensor(uninitialized: x.shape)
        out.withUnsafeMutableBufferPointer { p in
            for index in 0..<p.count { p[index] = values.count == 1 ? values[0] : values[(index / plane) % channels] }
        }
        return out
    }
}
