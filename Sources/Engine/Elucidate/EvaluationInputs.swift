import Foundation

/// The inputs of an evaluation (`Evaluator`), read and evaluated a chunk at a time so that a
/// data set of any size never sits in memory whole: an in-memory batch, or images — files,
/// folders and manifests as `InputDiscovery.found` lists them, with a manifest's per-image
/// targets — decoded a bounded number ahead of the model work (`DecodeAhead`).
///
/// Every metric scores each input on its own, and `Evaluator` computes a method's map for an
/// input without the inputs beside it whenever the method could differ with them (backward
/// passes, random draws), so an input's score never depends on `imagesPerBatch` or on the
/// other inputs: the mean over a folder is the mean of the per-image runs.
public struct EvaluationInputs: Sendable {
    enum Source: Sendable {
        /// Rows `[N, C, H, W]` with their names and targets (nil: the plan's).
        case tensor(Tensor, names: [String]?, targets: [Int]?)
        /// Images decoded with the preset (nil: the model's, else torchvision's) and EXIF rule.
        case images([BatchInput], preset: PreprocessingPreset?, exif: ExifRule)
    }

    let source: Source
    /// Inputs decoded and evaluated together (at least 1): with the decoder's as many ahead,
    /// the most images in memory at once. Images of different sizes (preset `none`) go in
    /// separate chunks.
    public var imagesPerBatch: Int

    /// Hears each image decoded under `ExifRule.ignore` whose EXIF orientation would turn it
    /// (2…8), with its path, so that a caller can say so (the command line's note on stderr).
    public var ignoredOrientation: (@Sendable (_ path: String, _ orientation: Int) -> Void)?

    /// The default `imagesPerBatch`: the `batch-size` default of the metrics' model calls.
    public static let defaultImagesPerBatch = 16

    /// The rows of `inputs` `[N, C, H, W]`, named `names` (default `input[i]`), evaluated for
    /// `targets` (one class per row; default the plan's `target`), `imagesPerBatch` rows at a time.
    public static func tensor(_ inputs: Tensor, names: [String]? = nil, targets: [Int]? = nil,
                              imagesPerBatch: Int = defaultImagesPerBatch) -> EvaluationInputs {
        EvaluationInputs(source: .tensor(inputs, names: names, targets: targets), imagesPerBatch: imagesPerBatch)
    }

    /// The images of `inputs` (e.g. `InputDiscovery.found(paths:manifest:)`), in that order,
    /// each named by its path and evaluated for its own target if it has one (a manifest's second
    /// column), else the plan's; decoded with `preset` (nil: the model's, else torchvision's) and `exif`.
    public static func images(_ inputs: [BatchInput], preset: PreprocessingPreset? = nil, exif: ExifRule = .ignore,
                              imagesPerBatch: Int = defaultImagesPerBatch) -> EvaluationInputs {
        EvaluationInputs(source: .images(inputs, preset: preset, exif: exif), imagesPerBatch: imagesPerBatch)
    }

    /// How many inputs there are (rows of a tensor of rank 4; 0 for any other tensor).
    public var count: Int {
        switch source {
        case .tensor(let tensor, _, _): tensor.rank == 4 ? tensor.shape[0] : 0
        case .images(let inputs, _, _): inputs.count
        }
    }

    /// The preset methods are made with (nil for the model's own).
    var preset: PreprocessingPreset? {
        if case .images(_, let preset, _) = source { return preset }
        return nil
    }

    /// Calls `body` with each chunk in order, `imagesPerBatch` inputs at most; an input that
    /// cannot be read, a bad shape, name count or target stops the run with an error naming it.
    func forEachChunk(_ classifier: Classifier,
                      _ body: (EvaluationChunk) throws(ElucidateError) -> Void) throws(ElucidateError) {
        guard imagesPerBatch >= 1 else {
            throw ElucidateError(.invalidArgument, "images-per-batch must be at least 1, got \(imagesPerBatch)")
        }
        let channels = classifier.network.inputChannels
        switch source {
        case .tensor(let inputs, let names, let targets):
            guard inputs.rank == 4, inputs.shape.allSatisfy({ $0 > 0 }), inputs.shape[1] == channels else {
                throw ElucidateError(.invalidArgument, "the input must be a batch [N, \(channels), H, W], got \(inputs.shape)")
            }
            let rows = inputs.shape[0]
            let rowNames = names ?? (0..<rows).map { "input[\($0)]" }
            guard rowNames.count == rows else { throw ElucidateError(.invalidArgument, "\(rowNames.count) names for \(rows) inputs") }
            if let targets, targets.count != rows { throw ElucidateError(.invalidArgument, "\(targets.count) targets for \(rows) inputs") }
            var start = 0
            while start < rows {
                let end = min(rows, start + imagesPerBatch)
                let rowTargets = try (start..<end).map { row throws(ElucidateError) -> Int? in
                    try targets.map { targets throws(ElucidateError) in try BatchTarget.index(targets[row]).index(in: classifier) }
                }
                try body(EvaluationChunk(offset: start, names: Array(rowNames[start..<end]),
                                         inputs: rows == end - start ? inputs : inputs.rows(start..<end), targets: rowTargets))
                start = end
            }
        case .images(let inputs, let preset, let exif):
            guard !inputs.isEmpty else { throw ElucidateError(.invalidArgument, "no PNG or JPEG images in the inputs given") }
            let decoder = DecodeAhead(inputs, preset: preset ?? classifier.preset ?? .torchvision, exif: exif,
                                      capacity: 2 * imagesPerBatch)
            defer { decoder.stop() }
            var offset = 0
            func image(_ item: DecodeAhead.Item) throws(ElucidateError) -> (BatchInput, Tensor, Int?) {
                switch item.result {
                case .failure(let error): throw error.path == nil ? error.at(item.input.path) : error
                case .success(let image):
                    if exif == .ignore, let orientation = image.exifOrientation, (2...8).contains(orientation) {
                        ignoredOrientation?(item.input.path, orientation)
                    }
                    guard image.tensor.shape[1] == channels else {
                        throw ElucidateError(.invalidArgument, "the image has \(image.tensor.shape[1]) channels, the model takes \(channels)",
                                             path: item.input.path)
                    }
                    do throws(ElucidateError) {
                        return (item.input, image.tensor, try item.input.target?.index(in: classifier))
                    } catch { throw error.at(item.input.path) }
                }
            }
            while let first = decoder.next() {
                var chunk = [try image(first)]
                // One size per chunk: a preset such as `none` leaves each image at its own size.
                while chunk.count < imagesPerBatch, let next = decoder.peek(), case .success(let decoded) = next.result,
                      decoded.tensor.shape == chunk[0].1.shape {
                    chunk.append(try image(decoder.next()!))
                }
                try body(EvaluationChunk(offset: offset, names: chunk.map(\.0.path),
                                         inputs: chunk.count == 1 ? chunk[0].1 : Tensor.concatenatingRows(chunk.map(\.1)),
                                         targets: chunk.map(\.2)))
                offset += chunk.count
            }
        }
    }
}

/// Consecutive inputs of one evaluation, evaluated together.
struct EvaluationChunk {
    /// The index of the first row among all the inputs.
    var offset: Int
    /// The rows' names.
    var names: [String]
    /// The rows `[n, C, H, W]`.
    var inputs: Tensor
    /// Each row's own class (checked against the model), or nil for the plan's target.
    var targets: [Int?]

    var count: Int { names.count }
}

/// The mean and spread of one metric over a data set.
public struct Spread: Codable, Sendable, Equatable {
    /// The mean.
    public var mean: Double
    /// The population standard deviation (`numpy.std`), 0 for one value.
    public var standardDeviation: Double
    /// How many values.
    public var count: Int

    /// The spread of `values` (at least one; NaN mean and spread for none).
    public init(_ values: [Double]) {
        count = values.count
        let mean = values.reduce(0, +) / Double(values.count)
        self.mean = mean
        standardDeviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
    }
}
