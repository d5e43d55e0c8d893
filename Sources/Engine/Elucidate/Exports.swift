/// Elucidate: explanations for image classifiers (Captum's methods, in Swift over C kernels).
///
/// This umbrella module holds no code of its own: it re-exports every layer of the engine so
/// that users write `import Elucidate`. The layers, bottom to top (each may depend only on
/// the ones listed after "on"):
///
/// - `ElucidateCore`: `Tensor`, `ElucidateError`, the runtime (threads, BLAS, instruction
///   sets); on CKernels.
/// - `ElucidateIO`: file formats (safetensors, `.npy`, `.pth`, pickle, zip), atomic writes; on Core.
/// - `ElucidateImage`: image decoding, EXIF, resizing, preprocessing, superpixels; on Core, IO.
/// - `ElucidateNN`: layers and the reverse-mode autodiff `Graph`; on Core.
/// - `ElucidateModels`: ResNet, `Classifier`, architecture inference, built-in models; on
///   Core, IO, Image, NN.
/// - `ElucidateAttribution`: the attribution methods; on Core, Image, NN, Models.
/// - `ElucidateVisualization`: attribution views and figures as PNG; on Core, IO, Image.
/// - `ElucidateEvaluation`: deletion, insertion, infidelity, sensitivity, the sanity check; on
///   Core, IO, Models, Attribution.
///
/// On top of them, this module holds the workflow the command line and the C API share:
/// `Explainer` (and `ExplanationPlan`, `Options`), `PictureSettings` and `Visualizer`,
/// `ModelLoader`, `ImageInput`, `Evaluator` (and `EvaluationPlan`), and the reports
/// (`ExplanationReport`, `PredictionReport`, `EvaluationReport`).
@_exported import ElucidateCore
@_exported import ElucidateIO
@_exported import ElucidateImage
@_exported import ElucidateNN
@_exported import ElucidateModels
@_exported import ElucidateAttribution
@_exported import ElucidateVisualization
@_exported import ElucidateEvaluation
