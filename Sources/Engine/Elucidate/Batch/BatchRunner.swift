import Foundation

/// What a batch run does to each input.
public enum BatchJob: Sendable {
    /// `elucidate explain METHOD --out-dir`: attributions (and pictures) per input, with the
    /// method's command-line name and its options (shared ones included, as `Explainer` takes them).
    case explain(method: String, options: Options)
    /// `elucidate predict --out-dir`: the index only (prediction and probability per input).
    case predict
}

/// How a batch run reads its inputs and where it writes.
public struct BatchRunSettings: Sendable {
    /// The output folder (created if missing): the index and every input's files.
    public var outputFolder: URL
    /// The shard this run is (its index is then `index-I-of-N.jsonl`), or nil for all inputs.
    public var shard: Shard?
    /// Images of one size explained together (at least 1). Only predictions and methods that
    /// run forward passes alone without random draws (occlusion, feature ablation, …) are
    /// batched; the others run one input at a time (`InputSeed` gives each its own seed), so
    /// that an input's files never depend on the inputs beside it.
    public var batchSize = 1
    /// Skip inputs whose error-free index record exists and whose files all exist.
    public var resume = false
    /// The preprocessing (default: the model's own, else torchvision).
    public var preset: PreprocessingPreset?
    /// How images' EXIF orientation is treated.
    public var exif: ExifRule = .ignore
    /// Draw a picture of each input's attributions (`….png` beside the `.npy`) with these settings.
    public var pictures: PictureSettings?
    /// Files no output may replace (the model, labels, baselines…); each input is protected too.
    public var protectedFiles: [URL] = []

    /// Settings writing into `outputFolder`, every other setting at its default.
    public init(outputFolder: URL) { self.outputFolder = outputFolder }
}

/// Where a batch run stands, after each input.
public struct BatchProgress: Sendable, Equatable {
    /// Inputs done without error in this run.
    public var done = 0
    /// Inputs that failed in this run.
    public var failed = 0
    /// Inputs skipped because an earlier run did them (`resume`).
    public var skipped = 0
    /// Inputs this run has to do (its shard, less the skipped ones).
    public var total = 0

    /// Counts with these values (all 0 by default).
    public init(done: Int = 0, failed: Int = 0, skipped: Int = 0, total: Int = 0) {
        self.done = done
        self.failed = failed
        self.skipped = skipped
        self.total = total
    }
}

/// How a batch run ended.
public struct BatchSummary: Sendable, Equatable {
    /// The final counts.
    public var progress: BatchProgress
    /// Wall-clock seconds of the run.
    public var seconds: Double
    /// The signal (or number) of a cancellation that stopped the run early, or nil.
    public var cancelledBy: Int32?
    /// The index written.
    public var index: URL

    /// Inputs done per second.
    public var imagesPerSecond: Double { seconds > 0 ? Double(progress.done) / seconds : 0 }

    /// `done D, failed F, skipped S in T s (R images/s)`.
    public var line: String {
        String(format: "done %d, failed %d, skipped %d in %.2f s (%.2f images/s)",
               progress.done, progress.failed, progress.skipped, seconds, imagesPerSecond)
    }
}

/// Runs a method (or a prediction) over many inputs into an output folder: the library side of
/// `elucidate explain|predict … --out-dir OUT`.
///
/// Each input's attributions go to `OUT/<relative path, extension .npy>` (`[1, C, H, W]` float32,
/// as a single-input `explain` writes them), its picture to `….png`; every file is written
/// atomically, then the input's `IndexRecord` is appended to the index. An input that cannot be
/// read or explained gets an error record and the run goes on. Inputs run in the order given;
/// consecutive inputs of one size (and all with or all without a manifest target) go through the
/// network together, up to `batchSize`, while the next images are decoded on another thread. An
/// input's files do not depend on which inputs share its batch, its shard, or whether the run was
/// resumed: methods with a backward pass or random draws run each input alone, with a seed
/// derived from `seed` and the input's relative path (`InputSeed`; `seed` is 0 unless given).
public struct BatchRunner: Sendable {
    /// The model.
    public let classifier: Classifier
    /// How errors and records name the model (reports' `model`).
    public let modelName: String
    /// What to do to each input.
    public let job: BatchJob
    /// Where and how.
    public let settings: BatchRunSettings

    /// A runner of `job` on `classifier` with `settings`; the method and its options are
    /// checked (and their files read) when it runs.
    public init(classifier: Classifier, modelName: String? = nil, job: BatchJob, settings: BatchRunSettings) {
        self.classifier = classifier
        self.modelName = modelName ?? classifier.source.path
        self.job = job
        self.settings = settings
    }

    /// The index file this run writes.
    public var indexURL: URL { settings.outputFolder.appendingPathComponent(BatchIndex.fileName(shard: settings.shard)) }

    /// Runs over `inputs` (this shard's, sorted: `InputDiscovery`, `Shard.select`), stopping
    /// between batches once `cancellation` is set; `progress` hears the counts after each input.
    ///
    /// - Throws: for what stops every input — a bad method option, an output folder or index
    ///   that cannot be written; an input's own failure is an error record instead.
    public func run(_ inputs: [BatchInput], cancellation: CancellationFlag = CancellationFlag(),
                    progress: (@Sendable (BatchProgress) -> Void)? = nil) throws(ElucidateError) -> BatchSummary {
        let started = Date()
        let preset = settings.preset ?? classifier.preset ?? .torchvision
        let work = try BatchWork(job: job, classifier: classifier, modelName: modelName, preset: preset)
        try Self.makeFolder(settings.outputFolder)

        var kept: [String: IndexRecord] = [:]
        if settings.resume {
            for record in try BatchIndex.read(indexURL) where record.error == nil && record.files.allSatisfy({
                FileManager.default.fileExists(atPath: settings.outputFolder.appendingPathComponent($0).path)
            }) {
                kept[record.input] = record
            }
        }
        let keptInOrder = inputs.compactMap { kept[$0.path] }
        let todo = inputs.filter { kept[$0.path] == nil }
        let index = try BatchIndex(url: indexURL, keeping: keptInOrder)
        var counts = BatchProgress(skipped: keptInOrder.count, total: todo.count)
        progress?(counts)

        let decoder = DecodeAhead(todo, preset: preset, exif: settings.exif, capacity: 2 * max(1, settings.batchSize))
        defer { decoder.stop() }
        var grouping: BatchWork.Grouping?
        while !cancellation.isCancelled, let first = decoder.next() {
            var batch: [(input: BatchInput, image: ImageInput)] = []
            switch first.result {
            case .failure(let error):
                try record(IndexRecord(failed: first.input, error), into: index, counts: &counts, progress)
                continue
            case .success(let image):
                batch.append((first.input, image))
            }
            let shape = batch[0].image.tensor.shape
            let mode = grouping ?? work.grouping(batch[0].image.tensor)
            grouping = mode
            let limit = mode == .batched ? max(1, settings.batchSize) : 1
            while batch.count < limit, let next = decoder.peek(), case .success(let image) = next.result,
                  image.tensor.shape == shape, (next.input.target == nil) == (batch[0].input.target == nil) {
                _ = decoder.next()
                batch.append((next.input, image))
            }
            for outcome in run(batch, work: work, preset: preset, seeded: mode == .aloneSeeded) {
                try record(outcome, into: index, counts: &counts, progress)
            }
        }
        return BatchSummary(progress: counts, seconds: Date().timeIntervalSince(started),
                            cancelledBy: cancellation.signalNumber, index: indexURL)
    }

    private func record(_ record: IndexRecord, into index: BatchIndex, counts: inout BatchProgress,
                        _ progress: (@Sendable (BatchProgress) -> Void)?) throws(ElucidateError) {
        try index.append(record)
        if record.error == nil { counts.done += 1 } else { counts.failed += 1 }
        progress?(counts)
    }

    /// The records of one batch, its files written; a batch that fails is run again one input
    /// at a time, so that one bad input fails alone.
    private func run(_ batch: [(input: BatchInput, image: ImageInput)], work: BatchWork, preset: PreprocessingPreset,
                     seeded: Bool) -> [IndexRecord] {
        let started = Date()
        do throws(ElucidateError) {
            let targets: [Int]?
            if batch[0].input.target != nil {
                targets = try batch.map { row throws(ElucidateError) in try row.input.target!.index(in: classifier) }
            } else {
                targets = nil
            }
            let inputs = batch.count == 1 ? batch[0].image.tensor : Tensor.concatenatingRows(batch.map(\.image.tensor))
            let source = batch.count == 1 ? batch[0].input.path : "a batch of \(batch.count) images"
            var records = try work.run(inputs, names: batch.map(\.input.path), targets: targets, source: source,
                                       exifOrientation: batch.count == 1 ? batch[0].image.exifOrientation : nil,
                                       seededBy: seeded ? batch[0].input : nil)
            let seconds = Date().timeIntervalSince(started) / Double(batch.count)
            for row in records.indices {
                records[row].record.seconds = seconds
                try write(&records[row], for: batch[row].input, input: inputs.rows(row..<(row + 1)), preset: preset)
            }
            return records.map(\.record)
        } catch {
            guard batch.count > 1 else { return [IndexRecord(failed: batch[0].input, error)] }
            return batch.flatMap { run([$0], work: work, preset: preset, seeded: seeded) }
        }
    }

    /// Writes a row's attributions and picture (atomically), naming them in its record.
    private func write(_ row: inout BatchWork.Row, for input: BatchInput, input tensor: Tensor,
                       preset: PreprocessingPreset) throws(ElucidateError) {
        guard let attributions = row.attributions else { return }
        let protected = settings.protectedFiles + [URL(fileURLWithPath: input.path)]
        let output = input.outputPath(extension: "npy")
        let outputURL = settings.outputFolder.appendingPathComponent(output)
        try Self.makeFolder(outputURL.deletingLastPathComponent())
        var picturePath: String?
        if let pictures = settings.pictures {
            // Drawn before anything is written: a picture that cannot be drawn fails the input.
            let photo = try VisualizationPhoto.denormalized(tensor, preset: preset)
            let figure = try pictures.figure(attributions, index: 0, photo: photo)
            try NPY.write(attributions, to: outputURL, protectedInputs: protected)
            picturePath = input.outputPath(extension: "png")
            _ = try pictures.write(figure, to: settings.outputFolder.appendingPathComponent(picturePath!).path,
                                   protectedInputs: protected + [outputURL])
        } else {
            try NPY.write(attributions, to: outputURL, protectedInputs: protected)
        }
        row.record.output = output
        row.record.picture = picturePath
    }

    private static func makeFolder(_ url: URL) throws(ElucidateError) {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw ElucidateError(.unreadable, "cannot create the output folder", path: url.path)
        }
    }
}

extension IndexRecord {
    /// The record of `input` failing with `error`, on one line.
    init(failed input: BatchInput, _ error: ElucidateError) {
        self.init(input: input.path)
        let text = error.path == nil ? error.at(input.path).description : error.description
        self.error = text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
