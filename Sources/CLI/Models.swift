import ArgumentParser
import Elucidate
import Foundation

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in models and the architectures Elucidate can load.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Option(name: .long, help: "List this model's layers (a weights file or a built-in model's name) by PyTorch module path, with their output shapes.")
    var layers: String?

    @Option(name: .customLong("input-size"), help: "With --layers: the input's H,W (default: the model's preset crop, else 224,224).")
    var inputSize: String?

    func validate() throws {
        if inputSize != nil && layers == nil { throw ValidationError("--input-size applies only to --layers") }
        if let inputSize, Self.size(inputSize) == nil {
            throw ValidationError("--input-size must be two positive integers H,W, got '\(inputSize)'")
        }
    }

    /// "H,W" → two positive integers.
    static func size(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let h = parts[0], let w = parts[1], h > 0, w > 0 else { return nil }
        return (h, w)
    }

    /// `--layers MODEL`: each module's path and output shape for one input of `--input-size`.
    func listLayers(_ model: String) throws {
        struct Layer: Encodable {
            let name: String
            let shape: [Int]
        }
        let classifier = try ModelLoader.load(model)
        let side = classifier.preset?.cropSize ?? 224
        let (h, w) = inputSize.flatMap(Self.size) ?? (side, side)
        let layers = try classifier.network.layerNames(inputShape: [1, classifier.network.inputChannels, h, w])
        if json {
            try StandardOutput.write(try JSONOutput.string(layers.map { Layer(name: $0.name, shape: $0.outputShape) }) + "\n")
            return
        }
        var text = ""
        text.line("Layers of \(TerminalText.escaped(model)) (\(classifier.architecture.description)) for an input [1, \(classifier.network.inputChannels), \(h), \(w)]:")
        let width = layers.map(\.name.count).max() ?? 0
        for layer in layers {
            text.line("  \(layer.name.padding(toLength: width, withPad: " ", startingAt: 0))  [\(layer.outputShape.map(String.init).joined(separator: ", "))]")
        }
        try StandardOutput.write(text)
    }

    func run() throws {
        if let layers { return try listLayers(layers) }
        struct Builtin: Encodable {
            let name: String
            let isDefault: Bool
            let path: String?
            let summary: String
        }
        struct Report: Encodable {
            let builtin: [Builtin]
            let architectures: [String]
            let stems: [String]
            let heads: [String]
        }
        let builtin = BuiltinModels.all.map {
            Builtin(name: $0.name, isDefault: $0.name == BuiltinModels.defaultName,
                    path: (try? BuiltinModels.url(for: $0.name))?.path, summary: $0.summary)
        }
        let architectures = ResNetArchitecture.named.map(\.name)
        let stems = ["imagenet: 7×7 stride-2 conv + 3×3 max pool (torchvision)",
                     "small: 3×3 stride-1 conv, no max pool (suffix -small-stem, or metadata stem=small)"]
        let heads = ["torchvision: average pool + fc (keys conv1 … layer4, fc)",
                     "fastai: vision_learner/cnn_learner create_head (keys 0.* body, 1.2/1.4/1.6/1.8 head)"]
        if json {
            try StandardOutput.write(try JSONOutput.string(Report(builtin: builtin, architectures: architectures, stems: stems, heads: heads)) + "\n")
            return
        }
        var text = ""
        text.line("Built-in models (--model NAME):")
        for model in builtin {
            text.line("  \(model.name)\(model.isDefault ? " (default)" : "")\(model.path == nil ? " [not installed]" : "")")
            text.line("      \(model.summary)")
        }
        text.line("")
        text.line("Architectures (--arch NAME, or inferred from the weights' keys):")
        text.line("  \(architectures.joined(separator: ", ")); any other BasicBlock/Bottleneck depths and widths")
        text.line("  in torchvision's four-stage layout are inferred too.")
        text.line("Stems:")
        for stem in stems { text.line("  \(stem)") }
        text.line("Heads:")
        for head in heads { text.line("  \(head)") }
        text.line("Weights: .safetensors (metadata arch, stem, labels, preset are read) or torch.save .pth state dicts.")
        try StandardOutput.write(text)
    }
}
