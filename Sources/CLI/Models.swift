import ArgumentParser
import Engine
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
            print(try JSONOutput.string(Report(builtin: builtin, architectures: architectures, stems: stems, heads: heads)))
            return
        }
        print("Built-in models (--model NAME):")
        for model in builtin {
            print("  \(model.name)\(model.isDefault ? " (default)" : "")\(model.path == nil ? " [not installed]" : "")")
            print("      \(model.summary)")
        }
        print("")
        print("Architectures (--arch NAME, or inferred from the weights' keys):")
        print("  \(architectures.joined(separator: ", ")); any other BasicBlock/Bottleneck depths and widths")
        print("  in torchvision's four-stage layout are inferred too.")
        print("Stems:")
        for stem in stems { print("  \(stem)") }
        print("Heads:")
        for head in heads { print("  \(head)") }
        print("Weights: .safetensors (metadata arch, stem, labels, preset are read) or torch.save .pth state dicts.")
    }
}
