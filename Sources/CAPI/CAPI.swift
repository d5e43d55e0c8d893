// The C API declared in include/elucidate.h: @_cdecl functions over the Swift library.
//
// Nothing that C passes in may reach a Swift precondition: pointers, shapes, channel counts,
// targets and strings are checked here first, and every Swift error becomes a status code plus
// the command line's one-line message. The header documents ownership and thread safety.
import Elucidate
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What an `elu_model *` points to: one retained instance (Unmanaged), immutable, shared by
/// every thread that uses the model.
final class ModelHandle: Sendable {
    let classifier: Classifier
    let explainer: Explainer

    /// `name` is what the caller loaded it as (a path or a built-in name): reports name the
    /// model by it, as the command line's reports name it by `--model`.
    init(_ classifier: Classifier, name: String) {
        self.classifier = classifier
        explainer = Explainer(classifier: classifier, modelName: name)
    }
}

/// C's `char **error`: where a function stores its error message (or NULL); NULL itself to ignore it.
public typealias CErrorPointer = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

// The status codes of elucidate.h (ELU_OK, ELU_ERROR_*).
let eluOK: Int32 = 0
func status(of kind: ElucidateError.Kind) -> Int32 {
    switch kind {
    case .fileNotFound: 1
    case .unreadable: 2
    case .invalidFormat: 3
    case .unsupported: 4
    case .invalidArgument: 5
    case .unknownArchitecture: 6
    case .inputTooSmall: 7
    case .internalFailure: 8
    }
}

/// The largest tensor the API accepts, in elements (8 GiB of float32).
let maximumElements = 1 << 31

/// Runs `body`, sets `*error` (NULL on success, the error's line otherwise) and returns the status.
func run(_ error: CErrorPointer, _ body: () throws(ElucidateError) -> Void) -> Int32 {
    error?.pointee = nil
    do {
        try body()
        return eluOK
    } catch let failure {
        error?.pointee = copyCString(message(failure))
        return status(of: failure.kind)
    }
}

/// The line the CLI prints for `error` (`elucidate: LINE`), without its prefix.
func message(_ error: ElucidateError) -> String {
    TerminalText.escaped(error.description)
}

func invalid(_ text: String) -> ElucidateError { ElucidateError(.invalidArgument, text) }

/// A malloc'ed copy of `text` (freed by elu_string_free), or nil when out of memory.
func copyCString(_ text: String) -> UnsafeMutablePointer<CChar>? { strdup(text) }

func string(_ pointer: UnsafePointer<CChar>?, _ name: String) throws(ElucidateError) -> String {
    guard let pointer else { throw invalid("\(name) is NULL") }
    guard let text = String(validatingCString: pointer) else { throw invalid("\(name) is not valid UTF-8") }
    return text
}

func optionalString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws(ElucidateError) -> String? {
    guard pointer != nil else { return nil }
    return try string(pointer, name)
}

func modelHandle(_ pointer: OpaquePointer?) throws(ElucidateError) -> ModelHandle {
    guard let pointer else { throw invalid("model is NULL") }
    return Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

/// A checked `[N, C, H, W]`: every dimension ≥ 1, the element count within `maximumElements`,
/// C the model's input channels (any C when `channels` is nil: a layer's map).
func checkedShape(_ shape: UnsafePointer<Int64>?, channels: Int?, name: String = "shape") throws(ElucidateError) -> (dims: [Int], count: Int) {
    guard let shape else { throw invalid("\(name) is NULL") }
    let raw = (0..<4).map { shape[$0] }
    guard raw.allSatisfy({ $0 >= 1 }) else {
        throw invalid("\(name) \(raw) has a dimension less than 1 (expected [N, C, H, W])")
    }
    var count: Int64 = 1
    for d in raw {
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow, product <= Int64(maximumElements) else {
            throw invalid("\(name) \(raw) has more than \(maximumElements) elements")
        }
        count = product
    }
    let dims = raw.map { Int($0) }
    if let channels, dims[1] != channels {
        throw invalid("the model expects \(channels) input channels, got \(dims[1])")
    }
    return (dims, Int(count))
}

/// The caller's `[N, C, H, W]` floats as a tensor, refused when any is NaN or infinite.
func tensor(_ values: UnsafePointer<Float>?, _ name: String, _ shape: (dims: [Int], count: Int)) throws(ElucidateError) -> Tensor {
    guard let values else { throw invalid("\(name) is NULL") }
    let tensor = Tensor(shape: shape.dims, values: Array(UnsafeBufferPointer(start: values, count: shape.count)))
    try tensor.requireFinite(name == "input" ? "the input tensor" : "the \(name)")
    return tensor
}

/// Copies `tensor` to the caller's buffer of `count` floats.
func copy(_ tensor: Tensor, to buffer: UnsafeMutablePointer<Float>, count: Int) throws(ElucidateError) {
    guard tensor.count == count else {
        throw ElucidateError(.internalFailure, "the result has \(tensor.count) values where \(count) were expected")
    }
    tensor.withUnsafeBufferPointer { source in
        if let base = source.baseAddress { buffer.update(from: base, count: count) }
    }
}

// MARK: - The functions of elucidate.h

nonisolated(unsafe) let versionCString: UnsafeMutablePointer<CChar> = strdup(elucidateVersion)!
/// ELU_VERSION of elucidate.h (examples/c/check.c checks that they agree) and the CLI's --version.
let elucidateVersion = "0.1.0"

/// `elu_version` of elucidate.h: the library's version, static storage.
@_cdecl("elu_version")
public func elu_version() -> UnsafePointer<CChar> {
    UnsafePointer(versionCString)
}

/// `elu_string_free` of elucidate.h: frees a string the library returned; NULL is ignored.
@_cdecl("elu_string_free")
public func elu_string_free(_ s: UnsafeMutablePointer<CChar>?) {
    free(s)
}

/// `elu_release_cached_memory` of elucidate.h: `Runtime.releaseCachedMemory()`.
@_cdecl("elu_release_cached_memory")
public func elu_release_cached_memory() -> Int64 {
    Int64(Runtime.releaseCachedMemory())
}

/// `elu_model_load` of elucidate.h: a retained `ModelHandle` (free with `elu_model_free`), or NULL
/// with `*error` set.
@_cdecl("elu_model_load")
public func elu_model_load(_ pathOrBuiltinName: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                           _ error: CErrorPointer) -> OpaquePointer? {
    var result: OpaquePointer?
    _ = run(error) { () throws(ElucidateError) in
        let name = try string(pathOrBuiltinName, "path_or_builtin_name")
        let options = try Options(json: try optionalString(optionsJSON, "options_json"))
        let handle = ModelHandle(try ModelLoader.load(name, options: options), name: name)
        result = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
    return result
}

/// `elu_model_free` of elucidate.h: releases the model; NULL is ignored.
@_cdecl("elu_model_free")
public func elu_model_free(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

/// `elu_model_classes` of elucidate.h: the model's class count, −1 for NULL.
@_cdecl("elu_model_classes")
public func elu_model_classes(_ model: OpaquePointer?) -> Int64 {
    guard let handle = try? modelHandle(model) else { return -1 }
    return Int64(handle.classifier.classes)
}

/// `elu_image_tensor` of elucidate.h: the image preprocessed as the model expects, in a `malloc`ed
/// `[1, C, H, W]` buffer the caller frees with `elu_tensor_free`.
@_cdecl("elu_image_tensor")
public func elu_image_tensor(_ model: OpaquePointer?, _ imagePath: UnsafePointer<CChar>?,
                             _ tensorOut: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                             _ shapeOut: UnsafeMutablePointer<Int64>?, _ error: CErrorPointer) -> Int32 {
    tensorOut?.pointee = nil
    return run(error) { () throws(ElucidateError) in
        let handle = try modelHandle(model)
        let path = try string(imagePath, "image_path")
        guard let tensorOut else { throw invalid("tensor is NULL") }
        guard let shapeOut else { throw invalid("shape is NULL") }
        let tensor = try handle.classifier.inputTensor(imageAt: path, options: Options())
        guard tensor.rank == 4 else {
            throw ElucidateError(.internalFailure, "the image tensor has shape \(tensor.shape), not [1, C, H, W]")
        }
        guard let buffer = malloc(max(1, tensor.count) * MemoryLayout<Float>.stride)?.assumingMemoryBound(to: Float.self) else {
            throw ElucidateError(.internalFailure, "out of memory")
        }
        try copy(tensor, to: buffer, count: tensor.count)
        for axis in 0..<4 { shapeOut[axis] = Int64(tensor.shape[axis]) }
        tensorOut.pointee = buffer
    }
}

/// `elu_tensor_free` of elucidate.h: frees a tensor from `elu_image_tensor` or `elu_explain_alloc`; NULL is ignored.
@_cdecl("elu_tensor_free")
public func elu_tensor_free(_ tensor: UnsafeMutablePointer<Float>?) {
    free(tensor)
}

/// `elu_predict` of elucidate.h: writes N × classes logits to the caller's buffer.
@_cdecl("elu_predict")
public func elu_predict(_ model: OpaquePointer?, _ input: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?,
                        _ logits: UnsafeMutablePointer<Float>?, _ error: CErrorPointer) -> Int32 {
    run(error) { () throws(ElucidateError) in
        let handle = try modelHandle(model)
        let classifier = handle.classifier
        let checked = try checkedShape(shape, channels: classifier.network.inputChannels)
        let inputs = try tensor(input, "input", checked)
        guard let logits else { throw invalid("logits is NULL") }
        let result = try classifier.logits(inputs)
        try copy(result, to: logits, count: checked.dims[0] * classifier.classes)
    }
}

/// `elu_explain` of elucidate.h: `Explainer.explain` on the caller's `[N, C, H, W]` input, the
/// attributions (of `elu_attribution_shape`'s shape) written to the caller's buffer, which holds
/// the input's N·C·H·W values, and the JSON report optionally returned.
@_cdecl("elu_explain")
public func elu_explain(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                        _ input: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ targets: UnsafePointer<Int64>?,
                        _ attributions: UnsafeMutablePointer<Float>?,
                        _ reportJSON: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ error: CErrorPointer) -> Int32 {
    reportJSON?.pointee = nil
    return run(error) { () throws(ElucidateError) in
        let request = try ExplainRequest(model, method, optionsJSON, input, shape, targets)
        guard let attributions else { throw invalid("attributions is NULL") }
        guard request.resultCount <= request.input.count else {
            // The buffer holds the input's N·C·H·W values (this function's contract since 0.1);
            // a layer whose map is larger cannot be written there. Refused before any work.
            throw invalid("\(request.methodName) gives attributions of shape \(request.resultShape), more than the input's \(request.input.count) values elu_explain's buffer holds: use elu_explain_into or elu_explain_alloc")
        }
        let result = try request.run(reportJSON: reportJSON != nil)
        try copy(result.attributions, to: attributions, count: request.resultCount)
        try returnReport(result.report, to: reportJSON)
    }
}

/// `elu_visualize` of elucidate.h: `Visualizer.write` of the caller's attributions and input,
/// which share one shape (`elu_visualize_map` with that shape for both).
@_cdecl("elu_visualize")
public func elu_visualize(_ attributions: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ input: UnsafePointer<Float>?,
                          _ model: OpaquePointer?, _ optionsJSON: UnsafePointer<CChar>?, _ outPNG: UnsafePointer<CChar>?,
                          _ error: CErrorPointer) -> Int32 {
    elu_visualize_map(attributions, shape, input, shape, model, optionsJSON, outPNG, error)
}

/// `elu_visualize_map` of elucidate.h: `Visualizer.write` of attributions of their own shape
/// (a layer's map `[N, C, h, w]`, or the input's) over the caller's input.
@_cdecl("elu_visualize_map")
public func elu_visualize_map(_ attributions: UnsafePointer<Float>?, _ attributionShape: UnsafePointer<Int64>?,
                              _ input: UnsafePointer<Float>?, _ inputShape: UnsafePointer<Int64>?,
                              _ model: OpaquePointer?, _ optionsJSON: UnsafePointer<CChar>?, _ outPNG: UnsafePointer<CChar>?,
                              _ error: CErrorPointer) -> Int32 {
    run(error) { () throws(ElucidateError) in
        let handle = try modelHandle(model)
        let classifier = handle.classifier
        let options = try Options(json: try optionalString(optionsJSON, "options_json"))
        let path = try string(outPNG, "out_png")
        let inputChecked = try checkedShape(inputShape, channels: classifier.network.inputChannels, name: "input_shape")
        let mapChecked = try checkedShape(attributionShape, channels: nil, name: "attribution_shape")
        guard mapChecked.dims[0] == inputChecked.dims[0] else {
            throw invalid("the attributions hold \(mapChecked.dims[0]) rows and the input \(inputChecked.dims[0])")
        }
        let values = try tensor(attributions, "attributions", mapChecked)
        let inputs = try tensor(input, "input", inputChecked)
        try Visualizer.write(attributions: values, input: inputs, classifier: classifier, options: options, to: path)
    }
}
