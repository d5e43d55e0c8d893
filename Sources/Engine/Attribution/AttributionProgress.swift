import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN

/// Hears how far an attribution has got: `done` of `total` units of work.
///
/// `attribute` calls it on its own thread, in order, after each unit batch of work, with
/// `done` rising to `total` (the method's `progressTotal(inputShape:)`); it never changes the
/// attributions. The units are each method's natural ones:
/// - gradient methods (Saliency, Input × Gradient, guided backprop, deconvolution,
///   Integrated Gradients, GradientSHAP, DeepLIFT, DeepLIFT SHAP): forward + backward passes,
///   each over one chunk of at most the method's batch size rows (the forward-only passes of
///   the convergence delta are not counted);
/// - perturbation methods (Occlusion, feature ablation, Shapley value sampling, KernelSHAP,
///   LIME): perturbed copies scored;
/// - a `NoiseTunnel`: its method's units summed over every noisy copy.
public typealias AttributionProgress = @Sendable (_ done: Int, _ total: Int) -> Void

/// Passes of at most `batchSize` rows (at least 1) that `rows` rows take.
func passCount(rows: Int, batchSize: Int) -> Int {
    let perPass = max(1, batchSize)
    return rows / perPass + (rows % perPass == 0 ? 0 : 1)  // no overflow for any row count
}
