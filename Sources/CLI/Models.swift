import ArgumentParser
import Elucidate
import Foundation

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in models and the architectures Elucidate can load.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
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
