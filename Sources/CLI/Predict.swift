import ArgumentParser
import Elucidate
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images (or a preprocessed tensor) and print the top classes.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .customLong("top-k"), help: "How many classes to show per input.")
    var topK: Int = 5

    @Flag(name: .long, help: "Print one JSON document instead of a table.")
    var json = false

    @Option(name: .long, help: "Write the raw logits, float32 (N, classes), to this .npy file.")
    var logits: String?

    func validate() throws {
        if topK < 1 { throw ValidationError("--top-k must be at least 1") }
    }

    func run() throws {
        try OutputFiles.check([("--logits", logits)], inputs: modelOptions.inputURLs + inputOptions.inputURLs)
        let classifier = try modelOptions.loadClassifier()
        let batches = try inputOptions.loadBatches(for: classifier)
        if !json { inputOptions.noteIgnoredOrientations(batches) }
        var names: [String] = []
        var orientations: [Int?] = []
        var rows: [Tensor] = []
        // Each image is its own batch, so images of different sizes (preset none) are each
        // classified at their own size; every batch's logits are [n, classes].
        for batch in batches {
            names += batch.names
            orientations += batch.names.map { _ in inputOptions.ignoredOrientation(batch) }
            let logits = try classifier.logits(batch.tensor)
            do { try logits.requireFinite("the model's output", advice: "its arithmetic overflows float32 on this input") } catch {
                throw error.at(inputOptions.inputTensor ?? batch.names[0])
            }
            rows.append(logits)
        }
        let allLogits = Tensor.stackingRows(rows)
        if let logits {
            try NPY.write(allLogits, to: URL(fileURLWithPath: logits),
                          protectedInputs: modelOptions.inputURLs + inputOptions.inputURLs)
        }
        let ranked = classifier.topClasses(logits: allLogits, k: min(topK, classifier.classes))
        if json {
            let report = PredictionReport(
                model: modelOptions.model, architecture: classifier.architecture.description,
                classes: classifier.classes, exif: inputOptions.exifRule?.rawValue,
                inputs: zip(zip(names, ranked), orientations).map {
                    PredictionReport.Input(input: $0.0, top: $0.1, exifOrientation: $1)
                })
            try StandardOutput.write(try JSONOutput.string(report) + "\n")
        } else {
            // Names and labels come from files (and file names): escaped for the terminal.
            var text = ""
            for (name, scores) in zip(names, ranked) {
                text += TerminalText.escaped(name) + "\n"
                for (rank, score) in scores.enumerated() {
                    let label = score.label.map { "\(TerminalText.escaped($0)) (\(score.index))" } ?? "class \(score.index)"
                    text += String(format: "  %2d. %6.2f%%  %@  logit %.4f", rank + 1, score.probability * 100, label, score.logit) + "\n"
                }
            }
            try StandardOutput.write(text)
        }
    }
}

struct PredictionReport: Encodable {
    struct Input: Encodable {
        let input: String
        let top: [ClassScore]
        /// The EXIF orientation the image records, when it would turn it and was ignored.
        let exifOrientation: Int?
    }
    let model: String
    let architecture: String
    let classes: Int
    /// The EXIF rule images were decoded with ("ignore" or "apply"; none for an input tensor).
    let exif: String?
    let inputs: [Input]
}

enum JSONOutput {
    /// `value` as pretty-printed JSON. Strings keep their text exactly, through JSON's own
    /// escaping: the encoder writes control characters U+0000…U+001F as `\uXXXX` (or `\n`,
    /// …), and DEL and the C1 controls U+007F…U+009F, which JSON allows raw but a terminal
    /// may act on, are written `\u007f`…`\u009f` here too.
    static func string<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
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

extension Tensor {
    /// Concatenates `[Nᵢ, K]` tensors into `[ΣNᵢ, K]`.
    static func stackingRows(_ parts: [Tensor]) -> Tensor {
        guard parts.count > 1 else { return parts[0] }
        let columns = parts[0].shape[1]
        return Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }, columns], values: parts.flatMap(\.scalars))
    }
}
