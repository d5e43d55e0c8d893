import Foundation

/// Loads classifiers the way `--model` names them: a weights file, or a built-in model.
public enum ModelLoader {
    /// Loads `pathOrBuiltinName`: a `.safetensors` or `.pth` file, or — when no such file
    /// exists — the built-in model of that name (`fashion-mnist-resnet`).
    ///
    /// Options: `arch` (check the weights against `resnet18` … `resnet152`, `-small-stem`
    /// variants too) and `labels` (a file with one class label per line). Any other option
    /// is refused.
    public static func load(_ pathOrBuiltinName: String, options: Options = Options()) throws(ElucidateError) -> Classifier {
        var reader = OptionReader(options)
        let arch = try reader.string("arch")
        let labels = try reader.string("labels")
        try reader.finish(context: "a model")
        var classifier = try Classifier.load(from: try url(of: pathOrBuiltinName), architecture: arch)
        if let labels { try classifier.loadLabels(from: URL(fileURLWithPath: labels)) }
        return classifier
    }

    /// The weights file `pathOrBuiltinName` names: the path itself, or the built-in model of
    /// that name when no such file exists.
    public static func url(of pathOrBuiltinName: String) throws(ElucidateError) -> URL {
        let url = URL(fileURLWithPath: pathOrBuiltinName)
        if BuiltinModels.model(named: pathOrBuiltinName) != nil && !FileManager.default.fileExists(atPath: url.path) {
            return try BuiltinModels.url(for: pathOrBuiltinName)
        }
        return url
    }
}

/// An image file made into a model input.
public struct ImageInput: Sendable {
    /// `[1, C, H, W]`, preprocessed by the preset.
    public var tensor: Tensor
    /// The EXIF orientation the file records (1…8), if any, whether or not it was applied.
    public var exifOrientation: Int?

    /// Decodes the JPEG or PNG at `path` under `exif` and preprocesses it with `preset`.
    /// Anything but a regular file is refused before it is opened; errors name the file.
    public init(path: String, preset: PreprocessingPreset, exif: ExifRule = .ignore) throws(ElucidateError) {
        let url = URL(fileURLWithPath: path)
        try requireRegularFile(url, expected: "a JPEG or PNG image")
        let (image, orientation) = try ImageDecoder.loadWithOrientation(url, exif: exif)
        do { tensor = try Preprocessor(preset: preset).tensor(from: image) } catch { throw error.at(path) }
        exifOrientation = orientation
    }
}

extension Classifier {
    /// The image at `path` as this model's input `[1, C, H, W]`: decoded and preprocessed with
    /// the model's preset (torchvision if it records none).
    ///
    /// Options: `preset` (`torchvision`, `fastai`, `none`, `fashion-mnist`) and `exif`
    /// (`ignore`, the default, or `apply`). Any other option is refused.
    public func inputTensor(imageAt path: String, options: Options = Options()) throws(ElucidateError) -> Tensor {
        var reader = OptionReader(options)
        let preset = try reader.choice("preset", PreprocessingPreset.self) ?? self.preset ?? .torchvision
        let exif = try reader.choice("exif", ExifRule.self) ?? .ignore
        try reader.finish(context: "an image")
        let input = try ImageInput(path: path, preset: preset, exif: exif)
        guard input.tensor.shape[1] == network.inputChannels else {
            throw ElucidateError(.invalidArgument,
                                 "has \(input.tensor.shape[1]) channels after preprocessing, the model takes \(network.inputChannels)",
                                 path: path)
        }
        return input.tensor
    }
}

/// Reports as the command line prints them with `--json`.
public enum JSONOutput {
    /// `value` as pretty-printed JSON with sorted keys. Strings keep their text exactly,
    /// through JSON's own escaping: the encoder writes control characters U+0000…U+001F as
    /// `\uXXXX` (or `\n`, …), and DEL and the C1 controls U+007F…U+009F, which JSON allows raw
    /// but a terminal may act on, are written `\u007f`…`\u009f` here too.
    public static func string<T: Encodable>(_ value: T) throws(ElucidateError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data: Data
        do { data = try encoder.encode(value) } catch {
            throw ElucidateError(.internalFailure, "cannot encode the report as JSON: \(error)")
        }
        let text = String(decoding: data, as: UTF8.self)
        guard TerminalText.hasControlCharacters(text) else { return text }
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            // Outside strings the encoder writes only newlines and spaces.
            if scalar.value >= 0x7F && scalar.value <= 0x9F || (scalar.value < 0x20 && scalar != "\n") {
                escaped.append(contentsOf: String(format: "\\u%04x", scalar.value).unicodeScalars)
            } else {
                escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}

/// What `elucidate predict --json` prints: the top classes of each input.
public struct PredictionReport: Codable, Sendable {
    /// The top classes of one input.
    public struct Input: Codable, Sendable {
        /// The input's name (an image path, or `input[i]`).
        public var input: String
        /// The best classes, most probable first.
        public var top: [ClassScore]
        /// The EXIF orientation the image records, when it would turn it and was ignored.
        public var exifOrientation: Int?
    }
    /// The model as given (`--model`'s text or the weights file's path).
    public var model: String
    /// The architecture, e.g. `resnet34` (`resnet34 with fastai head` for a fastai model).
    public var architecture: String
    /// The model's number of classes.
    public var classes: Int
    /// The EXIF rule images were decoded with ("ignore" or "apply"; none for a tensor).
    public var exif: String?
    /// One entry per input, in order.
    public var inputs: [Input]

    /// The report of `logits` `[N, classes]` from `classifier`: the `topK` classes of each row
    /// (at most every class), named `names[i]` (default `input[i]`).
    public init(classifier: Classifier, modelName: String? = nil, logits: Tensor, names: [String]? = nil, topK: Int = 5,
                exif: ExifRule? = nil, exifOrientations: [Int?]? = nil) {
        let rows = logits.shape[0]
        let ranked = classifier.topClasses(logits: logits, k: max(1, min(topK, classifier.classes)))
        let names = names ?? (0..<rows).map { "input[\($0)]" }
        model = modelName ?? classifier.source.path
        architecture = classifier.architecture.description
        classes = classifier.classes
        self.exif = exif?.rawValue
        inputs = (0..<rows).map { row in
            Input(input: names[row], top: ranked[row], exifOrientation: exifOrientations?[row] ?? nil)
        }
    }
}
