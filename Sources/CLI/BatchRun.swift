import Elucidate
import Foundation

/// The command-line side of a batch run (`explain`/`predict --out-dir`): finds the inputs,
/// takes this process's shard, runs the library's `BatchRunner` with a progress bar over the
/// whole set, and ends with the summary line and the exit status (1 when an input failed,
/// 128 + the signal when one stopped the run).
struct BatchRun {
    var model: ModelOptions
    var input: InputOptions
    var batch: BatchOptions
    var quiet: Bool

    /// Runs `job` (progress bar labelled `label`), drawing pictures with `pictures` if given;
    /// `protectedFiles` are files the method reads besides the model (baselines, a mask).
    func run(_ job: BatchJob, label: String, pictures: PictureSettings? = nil, protectedFiles: [URL] = []) throws -> Never {
        guard let outDir = batch.outDir else { preconditionFailure("a batch run without --out-dir") }
        let found = try InputDiscovery.inputs(paths: input.images, manifest: input.manifest, excluding: outDir)
        if found.isEmpty { throw ElucidateError(.invalidArgument, "no PNG or JPEG images in the inputs given") }
        var inputs = found
        let shard = try batch.resolvedShard()
        if let shard {
            StandardError.write("\(shard.note)\n")
            inputs = shard.shard.select(found)
        }
        let classifier = try model.loadClassifier()
        var settings = BatchRunSettings(outputFolder: URL(fileURLWithPath: outDir))
        settings.shard = shard?.shard
        settings.batchSize = batch.batchSize
        settings.resume = batch.resume
        settings.preset = input.preset
        settings.exif = input.exifRule ?? .ignore
        settings.pictures = pictures
        settings.protectedFiles = model.inputURLs + protectedFiles
            + (input.manifest.map { [URL(fileURLWithPath: $0)] } ?? [])
        let runner = BatchRunner(classifier: classifier, modelName: model.model, job: job, settings: settings)
        let cancellation = SignalCancellation.install()
        let progress = ProgressBar(label: label, unit: "images", enabled: !quiet)
        let summary = try runner.run(inputs, cancellation: cancellation) { counts in
            progress.update(counts.done + counts.failed, of: counts.total)
        }
        progress.finish()
        StandardError.write(summary.line + "\n")
        if let signal = summary.cancelledBy { Foundation.exit(128 + signal) }
        Foundation.exit(summary.progress.failed > 0 ? 1 : 0)
    }
}
