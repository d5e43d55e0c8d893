extension ExplainMethod {
    /// Whether the method runs only forward passes of the model (it scores perturbed or
    /// masked copies, or reads activations): a batch run may then put several inputs through
    /// the network together, since a forward pass gives each row the same bits whatever rows
    /// share it — the backward kernels do not (see `BatchRunSettings.batchSize`).
    public var isForwardOnly: Bool {
        [.occlusion, .featureAblation, .shapleyValueSampling, .kernelSHAP, .lime, .layerActivation,
         .layerFeatureAblation, .eigenCAM, .scoreCAM, .ablationCAM].contains(self)
    }
}
