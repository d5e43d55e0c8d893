// explain-builtin IMAGE OUT.png — the built-in model's prediction on IMAGE, explained with
// saliency and drawn to OUT.png, through the Swift library.
//
// TODO(workflow merge): `import Elucidate` once the product `Elucidate` exports the umbrella
// module of that name (today it exports the module `Engine`), and the library's workflow
// (`ModelLoader`, `Explainer`, `Visualizer`) in place of the steps below.
import Elucidate
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: explain-builtin IMAGE OUT.png\n".utf8))
    exit(2)
}
do {
    let classifier = try BuiltinModels.load()
    let preset = classifier.preset ?? .torchvision
    let image = try ImageDecoder.load(URL(fileURLWithPath: arguments[1]), exif: .ignore)
    let input = try Preprocessor(preset: preset).tensor(from: image)
    let best = classifier.topClasses(logits: try classifier.logits(input), k: 1)[0][0]
    let attribution = try Saliency().attribute(classifier, inputs: input, targets: [best.index])
    let figure = try AttributionFigure.draw(attributions: attribution.values, photo: VisualizationPhoto.denormalized(input, preset: preset),
                                            panels: [VisualizationPanel.parse("heat-map:absolute-value")])
    try figure.write(to: URL(fileURLWithPath: arguments[2]))
    print("\(arguments[1]): class \(best.index) (\(classifier.displayLabel(best.index) ?? "no label")), "
          + "probability \(best.probability); saliency drawn to \(arguments[2])")
} catch {
    FileHandle.standardError.write(Data("explain-builtin: \(error)\n".utf8))
    exit(1)
}
