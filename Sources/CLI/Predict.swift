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

    @OptionGroup(title: "Data sets (--out-dir)") var batch: BatchOptions

    @Flag(name: .long, help: "With --out-dir: no progress bar on stderr.")
    var quiet = false

    func validate() throws {
        if topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if batch.outDir != nil {
            if logits != nil { throw ValidationError("--logits does not apply with --out-dir: the index (OUT/index.jsonl) is the report") }
            if json { throw ValidationError("--json does not apply with --out-dir: the index (OUT/index.jsonl) is the report") }
            if inputOptions.inputTensor != nil {
                throw ValidationError("--input-tensor does not apply with --out-dir: give images, folders or --manifest")
            }
        } else if inputOptions.manifest != nil {
            throw ValidationError("--manifest applies only with --out-dir")
        }
    }

    func run() throws {
        if batch.outDir != nil {
            // Every input (files, folders, --manifest) into the index; ends the process.
            try BatchRun(model: modelOptions, input: inputOptions, batch: batch, quiet: quiet).run(.predict, label: "predict")
        }
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
        let allLogits = Tensor.concatenatingRows(rows)
        if let logits {
            try NPY.write(allLogits, to: URL(fileURLWithPath: logits),
                          protectedInputs: modelOptions.inputURLs + inputOptions.inputURLs)
        }
        let report = PredictionReport(classifier: classifier, modelName: modelOptions.model, logits: allLogits,
                                      names: names, topK: topK, exif: inputOptions.exifRule, exifOrientations: orientations)
        if json {
            try StandardOutput.write(try JSONOutput.string(report) + "\n")
        } else {
            // Names and labels come from files (and file names): escaped for the terminal.
            var text = ""
            for input in report.inputs {
                text += TerminalText.escaped(input.input) + "\n"
                for (rank, score) in input.top.enumerated() {
                    let label = score.label.map { "\(TerminalText.escaped($0)) (\(score.index))" } ?? "class \(score.index)"
                    text += String(format: "  %2d. %6.2f%%  %@  logit %.4f", rank + 1, score.probability * 100, label, score.logit) + "\n"
                }
            }
            try StandardOutput.write(text)
        }
    }
}
