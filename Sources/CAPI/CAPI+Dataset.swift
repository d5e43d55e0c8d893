// elu_explain_dataset of elucidate.h: a data-set run (`elucidate explain|predict --out-dir`)
// from C, through the library's BatchRunner.
import Elucidate
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `elu_explain_dataset`: explains (or, with `method` NULL, predicts) every image of `inputs`
/// (`count` files or folders) and of `manifest` into `out_dir` with an index, and reports the
/// run's counts as JSON. Inputs that fail get error records; the status says whether the run
/// itself went through.
@_cdecl("elu_explain_dataset")
public func elu_explain_dataset(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                                _ inputs: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int64,
                                _ manifest: UnsafePointer<CChar>?, _ outDir: UnsafePointer<CChar>?,
                                _ runOptionsJSON: UnsafePointer<CChar>?, _ pictureOptionsJSON: UnsafePointer<CChar>?,
                                _ cancel: UnsafePointer<Int32>?,
                                _ summaryJSON: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                _ error: CErrorPointer) -> Int32 {
    summaryJSON?.pointee = nil
    return run(error) { () throws(ElucidateError) in
        let handle = try modelHandle(model)
        guard count >= 0, count <= 1 << 24 else { throw invalid("count \(count) is out of range (0…\(1 << 24))") }
        guard count == 0 || inputs != nil else { throw invalid("inputs is NULL") }
        let paths = try (0..<Int(count)).map { i throws(ElucidateError) in try string(inputs![i], "inputs[\(i)]") }
        let manifestPath = try optionalString(manifest, "manifest")
        let folder = try string(outDir, "out_dir")
        guard !folder.isEmpty else { throw invalid("out_dir is empty") }
        let job: BatchJob = try optionalString(method, "method").map { name throws(ElucidateError) in
            .explain(method: name, options: try Options(json: try optionalString(optionsJSON, "options_json")))
        } ?? .predict
        if case .predict = job, try optionalString(optionsJSON, "options_json").map({ !$0.allSatisfy(\.isWhitespace) }) == true {
            throw invalid("options_json is for a method: give method, or NULL options with a NULL method (predict)")
        }
        var settings = try BatchRunSettings(outputFolder: URL(fileURLWithPath: folder),
                                            options: try Options(json: try optionalString(runOptionsJSON, "run_options_json")))
        if let pictures = try optionalString(pictureOptionsJSON, "picture_options_json") {
            settings.pictures = try PictureSettings(options: try Options(json: pictures))
        }
        settings.protectedFiles = [handle.classifier.source] + (manifestPath.map { [URL(fileURLWithPath: $0)] } ?? [])
        var found = try InputDiscovery.inputs(paths: paths, manifest: manifestPath, excluding: folder)
        guard !found.isEmpty else { throw invalid("no PNG or JPEG images in the inputs given") }
        if let shard = settings.shard { found = shard.select(found) }
        let runner = BatchRunner(classifier: handle.classifier, modelName: handle.explainer.modelName, job: job,
                                 settings: settings)
        let cancellation = CancellationFlag()
        // The caller's flag is read after each input: a set flag stops the run after the batch in hand.
        // (Held as an address: the progress closure is @Sendable, a pointer is not.)
        let address = cancel.map { Int(bitPattern: $0) }
        let summary = try runner.run(found, cancellation: cancellation) { _ in
            if let address, let flag = UnsafePointer<Int32>(bitPattern: address), flag.pointee != 0 {
                cancellation.cancel()
            }
        }
        if let summaryJSON {
            let object: [String: Any] = [
                "done": summary.progress.done, "failed": summary.progress.failed, "skipped": summary.progress.skipped,
                "seconds": summary.seconds, "imagesPerSecond": summary.imagesPerSecond, "index": summary.index.path,
                "cancelled": summary.cancelledBy != nil, "summary": summary.line,
            ]
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                  let text = String(data: data, encoding: .utf8), let copy = copyCString(text) else {
                throw ElucidateError(.internalFailure, "out of memory")
            }
            summaryJSON.pointee = copy
        }
    }
}
