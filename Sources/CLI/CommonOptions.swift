import ArgumentParser
import Engine
import Foundation

/// Where the model comes from and how it is run.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Weights file (.safetensors or .pth), or a built-in model's name (see 'elucidate models').")
    var model: String = BuiltinModels.defaultName

    @Option(name: .long, help: "Check the weights against this architecture (resnet18, resnet34, resnet50, resnet101, resnet152).")
    var arch: String?

    @Option(name: .long, help: "Class labels, one per line.")
    var labels: String?

    @Option(name: .long, help: "Threads for the kernels (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let arch, ResNetArchitecture.named(arch.replacingOccurrences(of: "-small-stem", with: "")) == nil {
            let known = ResNetArchitecture.named.map(\.name).joined(separator: ", ")
            throw ValidationError("unknown architecture '\(arch)' (known: \(known))")
        }
    }

    /// Applies the thread count and loads the classifier (with labels, if given).
    func loadClassifier() throws(ElucidateError) -> Classifier {
        if let threads { Runtime.setThreadCount(threads) }
        var classifier = try Classifier.load(from: try modelURL(), architecture: arch)
        if let labels { try classifier.loadLabels(from: URL(fileURLWithPath: labels)) }
        return classifier
    }

    /// The weights file: `--model` as a path, or the built-in model of that name when no
    /// such file exists.
    func modelURL() throws(ElucidateError) -> URL {
        let url = URL(fileURLWithPath: model)
        if BuiltinModels.model(named: model) != nil && !FileManager.default.fileExists(atPath: url.path) {
            return try BuiltinModels.url(for: model)
        }
        return url
    }

    var inputURLs: [URL] {
        [(try? modelURL()) ?? URL(fileURLWithPath: model)] + (labels.map { [URL(fileURLWithPath: $0)] } ?? [])
    }
}

/// The images to run on: image files, or a tensor that is already preprocessed.
struct InputOptions: ParsableArguments {
    @Argument(help: "JPEG or PNG images.")
    var images: [String] = []

    @Option(name: .customLong("input-tensor"), help: "A float32 .npy of shape (N,3,H,W) or (3,H,W), already normalised; skips decoding and preprocessing.")
    var inputTensor: String?

    @Option(name: .long, help: "Preprocessing: torchvision, fastai, none or fashion-mnist (default: the model's own, else torchvision).")
    var preset: PreprocessingPreset?

    func validate() throws {
        if images.isEmpty && inputTensor == nil {
            throw ValidationError("give one or more images, or --input-tensor FILE.npy")
        }
        if !images.isEmpty && inputTensor != nil {
            throw ValidationError("give images or --input-tensor, not both")
        }
        if inputTensor != nil && preset != nil {
            throw ValidationError("--preset does not apply to --input-tensor, which is already preprocessed")
        }
    }

    var inputURLs: [URL] {
        images.map { URL(fileURLWithPath: $0) } + (inputTensor.map { [URL(fileURLWithPath: $0)] } ?? [])
    }

    /// One batch `[N, C, H, W]` per input name. Images of different sizes (preset `none`)
    /// become separate batches.
    func loadBatches(for classifier: Classifier) throws(ElucidateError) -> [(names: [String], tensor: Tensor)] {
        if let inputTensor {
            let url = URL(fileURLWithPath: inputTensor)
            var tensor = try NPY.readFloat32(url)
            if tensor.rank == 3 { tensor = tensor.reshaped([1] + tensor.shape) }
            guard tensor.rank == 4 else {
                throw ElucidateError(.invalidArgument,
                                     "expected a tensor of shape (N,C,H,W) or (C,H,W), got \(tensor.shape)", path: url.path)
            }
            guard tensor.shape[1] == classifier.network.inputChannels else {
                throw ElucidateError(.invalidArgument,
                                     "has \(tensor.shape[1]) channels, the model takes \(classifier.network.inputChannels)",
                                     path: url.path)
            }
            let names = (0..<tensor.shape[0]).map { "\(url.lastPathComponent)[\($0)]" }
            return [(names, tensor)]
        }
        let preprocessor = Preprocessor(preset: preset ?? classifier.preset ?? .torchvision)
        var batches: [(names: [String], tensor: Tensor)] = []
        for path in images {
            let image = try ImageDecoder.load(URL(fileURLWithPath: path))
            let tensor: Tensor
            do { tensor = try preprocessor.tensor(from: image) } catch { throw error.at(path) }
            batches.append(([path], tensor))
        }
        return batches
    }
}

extension PreprocessingPreset: ExpressibleByArgument {}
