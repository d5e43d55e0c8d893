/// Zennit's composites (`zennit/composites.py`): which `LRPRule` each layer of a ResNet gets.
/// Everywhere: ReLU passes relevance through, residual sums and the global average pool use
/// the Norm rule, max pooling its gradient (see `LRP`).
public enum LRPComposite: String, CaseIterable, Sendable {
    /// `EpsilonPlusFlat`: Flat on the first convolution, ZPlus on the others, Epsilon on fc.
    case epsilonPlusFlat = "epsilon-plus-flat"
    /// `EpsilonGammaBox`: ZBox(low, high) on the first convolution, Gamma(γ) on the others,
    /// Epsilon on fc.
    case epsilonGammaBox = "epsilon-gamma-box"
    /// `EpsilonAlpha2Beta1`: AlphaBeta(2, 1) on every convolution, Epsilon on fc.
    case epsilonAlpha2Beta1 = "epsilon-alpha2-beta1"
    /// `EpsilonPlus`: ZPlus on every convolution, Epsilon on fc.
    case epsilonPlus = "epsilon-plus"

    /// The rules for the first convolution, the other convolutions and the classifier.
    func rules(epsilon: Float, gamma: Float, low: [Float], high: [Float])
        -> (first: LRPRule, convolutions: LRPRule, classifier: LRPRule) {
        switch self {
        case .epsilonPlusFlat: (.flat, .zPlus, .epsilon(epsilon))
        case .epsilonGammaBox: (.zBox(low: low, high: high), .gamma(gamma), .epsilon(epsilon))
        case .epsilonAlpha2Beta1: (.alphaBeta(alpha: 2, beta: 1), .alphaBeta(alpha: 2, beta: 1), .epsilon(epsilon))
        case .epsilonPlus: (.zPlus, .zPlus, .epsilon(epsilon))
        }
    }
}
