// explain-builtin IMAGE OUT.png [METHOD] — the built-in model's prediction on IMAGE, explained
// (saliency by default) and drawn to OUT.png, through the Swift library: the same steps as
// `elucidate explain METHOD IMAGE --visualize OUT.png`, and the same picture.
import Elucidate
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 3 || arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: explain-builtin IMAGE OUT.png [METHOD]\n".utf8))
    exit(2)
}
do {
    let classifier = try ModelLoader.load(BuiltinModels.defaultName)
    let input = try classifier.inputTensor(imageAt: arguments[1])  // [1, 3, 28, 28]
    let method = arguments.count == 4 ? arguments[3] : "saliency"
    let explanation = try Explainer(classifier: classifier).explain(method: method, inputs: input)
    try Visualizer.write(attributions: explanation.attributions, input: input, classifier: classifier, to: arguments[2])
    let row = explanation.report.inputs[0]
    print("\(arguments[1]): class \(row.predicted) (\(row.predictedLabel ?? "no label")), probability \(row.probability); "
          + "\(method) drawn to \(arguments[2])")
} catch {
    FileHandle.standardError.write(Data("explain-builtin: \(error)\n".utf8))
    exit(1)
}
