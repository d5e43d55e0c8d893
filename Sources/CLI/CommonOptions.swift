import ArgumentParser
import Elucidate
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

    /// Applies the thread count and loads the classifier (with labels, if given) through the
    /// library's `ModelLoader`.
    func loadClassifier() throws(ElucidateError) -> Classifier {
        if let threads { Runtime.setThreadCount(threads) }
        var options = Options()
        if let arch { options["arch"] = .string(arch) }
        if let labels { options["labels"] = .string(labels) }
        return try ModelLoader.load(model, options: options)
    }

    /// The weights file: `--model` as a path, or the built-in model of that name when no
    /// such file exists.
    func modelURL() throws(ElucidateError) -> URL { try ModelLoader.url(of: model) }

    var inputURLs: [URL] {
        [(try? modelURL()) ?? URL(fileURLWithPath: model)] + (labels.map { [URL(fileURLWithPath: $0)] } ?? [])
    }
}

/// The images to run on: image files, or a tensor that is already preprocessed; with
/// `--out-dir` (`BatchOptions`) also folders and a manifest.
struct InputOptions: ParsableArguments {
    @Argument(help: "JPEG or PNG images (with --out-dir, and for evaluate, also folders, walked for PNG and JPEG files).")
    var images: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "With --out-dir, and for evaluate: a UTF-8 list of images, one path per line (relative to the list's folder), optionally a TAB and a class index or label to explain; # starts a comment.",
        valueName: "list"))
    var manifest: String?

    @Option(name: .customLong("input-tensor"), help: "A float32 .npy of shape (N,3,H,W) or (3,H,W), already normalised; skips decoding and preprocessing.")
    var inputTensor: String?

    @Option(name: .long, help: "Preprocessing: torchvision, fastai, none or fashion-mnist (default: the model's own, else torchvision).")
    var preset: PreprocessingPreset?

    @Option(name: .long, help: ArgumentHelp(
        "EXIF orientation: ignore (default: the pixels as stored, as PIL.Image.open and torchvision) or apply (turn the image as a photo viewer shows it, as Pillow's ImageOps.exif_transpose).",
        valueName: "rule"))
    var exif: ExifRule?

    /// The EXIF rule images are decoded with (nil for an input tensor).
    var exifRule: ExifRule? { inputTensor == nil ? exif ?? .ignore : nil }

    func validate() throws {
        if images.isEmpty && inputTensor == nil && manifest == nil {
            throw ValidationError("give one or more images, or --input-tensor FILE.npy")
        }
        if manifest != nil && inputTensor != nil {
            throw ValidationError("give --manifest or --input-tensor, not both")
        }
        if !images.isEmpty && inputTensor != nil {
            throw ValidationError("give images or --input-tensor, not both")
        }
        if inputTensor != nil && preset != nil {
            throw ValidationError("--preset does not apply to --input-tensor, which is already preprocessed")
        }
        if inputTensor != nil && exif != nil {
            throw ValidationError("--exif does not apply to --input-tensor, which is already preprocessed")
        }
    }

    var inputURLs: [URL] {
        (manifest.map { [URL(fileURLWithPath: $0)] } ?? []) + images.map { URL(fileURLWithPath: $0) } + (inputTensor.map { [URL(fileURLWithPath: $0)] } ?? [])
    }

    /// The input tensor as one batch `[N, C, H, W]`, or one batch `[1, C, H, W]` per image
    /// (images may differ in size under preset `none`; see `requireOneSize`), each image decoded
    /// under `exifRule`, with the EXIF orientation it records.
    func loadBatches(for classifier: Classifier) throws(ElucidateError) -> [InputBatch] {
        if let inputTensor {
            let url = URL(fileURLWithPath: inputTensor)
            var tensor = try NPY.readFiniteFloat32(url, what: "the input tensor")
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
            return [(names, tensor, nil)]
        }
        var batches: [InputBatch] = []
        for path in images {
            let image = try ImageInput(path: path, preset: preset ?? classifier.preset ?? .torchvision, exif: exifRule ?? .ignore)
            batches.append(([path], image.tensor, image.exifOrientation))
        }
        return batches
    }

    /// The orientation to report for a batch: one that turns the image (2…8) and was ignored,
    /// so that a user can notice (nil otherwise).
    func ignoredOrientation(_ batch: InputBatch) -> Int? {
        exifRule == .ignore ? batch.exifOrientation.flatMap { (2...8).contains($0) ? $0 : nil } : nil
    }

    /// One note on stderr per image whose EXIF orientation was ignored (for the text report;
    /// the JSON report carries `exifOrientation`).
    func noteIgnoredOrientations(_ batches: [InputBatch]) {
        for batch in batches {
            guard let orientation = ignoredOrientation(batch) else { continue }
            Self.noteIgnoredOrientation(batch.names[0], orientation)
        }
    }

    /// The note on stderr for image `name`, whose EXIF orientation `orientation` was ignored.
    @Sendable static func noteIgnoredOrientation(_ name: String, _ orientation: Int) {
        StandardError.write("note: \(TerminalText.escaped(name)) records EXIF orientation \(orientation); "
                            + "it is used as stored, not as a photo viewer shows it (--exif apply turns it)\n")
    }
}

extension InputOptions {
    /// Refuses batches whose rows differ in shape — possible only for images that a preset
    /// such as `none` leaves at their own size — naming the first two images that differ.
    /// For commands that join every input into one array (explain), before any model work.
    func requireOneSize(_ batches: [InputBatch], preset: PreprocessingPreset) throws(ElucidateError) {
        guard let first = batches.first else { return }
        let size = Array(first.tensor.shape.dropFirst())
        guard let other = batches.first(where: { Array($0.tensor.shape.dropFirst()) != size }) else { return }
        func describe(_ shape: [Int]) -> String { shape.dropFirst().map(String.init).joined(separator: "×") }
        let which = self.preset != nil ? "--preset \(preset.rawValue)" : "the model's preset \(preset.rawValue)"
        throw ElucidateError(
            .invalidArgument,
            "images differ in size after preprocessing (\(first.names[0]) is \(describe(first.tensor.shape)), "
            + "\(other.names[0]) is \(describe(other.tensor.shape))); with \(which) every image must have the same size "
            + "— resize them or run one at a time")
    }
}

/// The files a command will write, checked before it does any work, so that a run that
/// cannot write all of them writes none: never over one of the command's inputs, never two
/// outputs to one file, always into an existing folder, never through a dangling link.
/// What each destination gets (a file replaced atomically, a device or FIFO written in
/// place) is the library's `AtomicFile.destination(of:)`.
enum OutputFiles {
    /// `outputs` pairs each option with its path (nil when not given); `sameFileMessage`
    /// words the refusal for two options naming one file (default: "A and B cannot be the same file").
    static func check(_ outputs: [(option: String, path: String?)], inputs: [URL],
                      sameFileMessage: (_ first: String, _ second: String) -> String = { "\($0) and \($1) cannot be the same file" })
        throws(ElucidateError) {
        var seen: [(option: String, url: URL)] = []
        for case let (option, path?) in outputs {
            let url = URL(fileURLWithPath: path)
            let destination: AtomicFile.Destination
            do { destination = try AtomicFile.destination(of: url) } catch {
                throw ElucidateError(error.kind, "\(error.message) (\(option))", path: error.path)
            }
            if AtomicFile.writing(destination, wouldOverwriteAnyOf: inputs) {
                throw ElucidateError(.invalidArgument, "refusing to overwrite an input file", path: url.path)
            }
            // A device, FIFO or socket is written in place: two outputs may share it (/dev/null).
            guard destination.isFile else { continue }
            let resolved = URL(fileURLWithPath: destination.path).standardizedFileURL.resolvingSymlinksInPath()
            if let earlier = seen.first(where: { $0.url == resolved }) {
                throw ElucidateError(.invalidArgument, sameFileMessage(earlier.option, option), path: path)
            }
            seen.append((option, resolved))
        }
    }
}

/// An input batch: its inputs' names, the tensor `[N, C, H, W]`, and for an image the EXIF
/// orientation its file records (nil for none, and for an input tensor).
typealias InputBatch = (names: [String], tensor: Tensor, exifOrientation: Int?)

extension PreprocessingPreset: ExpressibleByArgument {}
extension ExifRule: ExpressibleByArgument {}
