import Foundation

extension BatchRunSettings {
    /// The settings of a data-set run into `outputFolder` from the command line's names, as
    /// the C API takes them: `shard` ("I/N"), `resume` (bool), `images-per-batch` (≥ 1),
    /// `preset` and `exif` (the command line's choices); an unknown name is an error.
    /// Pictures are set apart (`pictures`, from the picture options).
    public init(outputFolder: URL, options: Options) throws(ElucidateError) {
        self.init(outputFolder: outputFolder)
        var reader = OptionReader(options)
        shard = try reader.string("shard").map { text throws(ElucidateError) in try Shard(parsing: text) }
        resume = try reader.bool("resume")
        batchSize = try reader.int("images-per-batch", default: 1)
        guard batchSize >= 1 else {
            throw ElucidateError(.invalidArgument, "images-per-batch must be at least 1, got \(batchSize)")
        }
        preset = try reader.choice("preset", PreprocessingPreset.self)
        exif = try reader.choice("exif", ExifRule.self) ?? .ignore
        try reader.finish(context: "a data-set run")
    }
}
