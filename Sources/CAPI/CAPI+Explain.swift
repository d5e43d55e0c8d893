// The explaining functions of elucidate.h beside elu_explain: the attribution shape before any
// work (elu_attribution_shape), and explanations of any shape into a buffer of a stated
// capacity (elu_explain_into) or a buffer the library allocates (elu_explain_alloc).
//
// A layer method's attributions have the layer's shape, not the input's, so the caller learns
// the shape first (SQLite's and libgit2's way: ask, allocate, call) or lets the library
// allocate. Every check — the arguments, the options, the layer, the capacity — happens before
// the method runs, so a refusal costs at most the one-row forward pass that finds the layer's
// shape, and nothing is written on failure.
import Elucidate
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// ELU_MAX_RANK of elucidate.h: the most dimensions an attribution shape has.
let maximumRank = 4

/// One explanation asked for through C, checked: the model, the method and its options, the
/// input, the targets and the attributions' shape.
struct ExplainRequest {
    let handle: ModelHandle
    let methodName: String
    let options: Options
    let input: (dims: [Int], count: Int)
    let inputs: Tensor
    let targets: [Int]?
    /// `Explainer.attributionShape` for this input: what the method will return.
    let resultShape: [Int]
    var resultCount: Int { resultShape.reduce(1, *) }

    /// Checks every argument (the targets against the model's classes) and finds the shape.
    init(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
         _ values: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?,
         _ targetRows: UnsafePointer<Int64>?) throws(ElucidateError) {
        handle = try modelHandle(model)
        let classifier = handle.classifier
        methodName = try string(method, "method")
        options = try Options(json: try optionalString(optionsJSON, "options_json"))
        let checked = try checkedShape(shape, channels: classifier.network.inputChannels)
        input = checked
        inputs = try tensor(values, "input", checked)
        targets = try targetRows.map { targetRows throws(ElucidateError) in
            try (0..<checked.dims[0]).map { row throws(ElucidateError) -> Int in
                let target = targetRows[row]
                guard target >= 0, target < Int64(classifier.classes) else {
                    throw invalid("target \(target) is out of range: the model has \(classifier.classes) classes")
                }
                return Int(target)
            }
        }
        resultShape = try handle.explainer.attributionShape(method: methodName, options: options, inputShape: input.dims)
        guard resultShape.count <= maximumRank else {
            throw ElucidateError(.internalFailure, "the attributions would have \(resultShape.count) dimensions, more than ELU_MAX_RANK")
        }
    }

    /// Runs the method: the attributions (checked to have `resultShape`) and, when asked, the report.
    func run(reportJSON wanted: Bool) throws(ElucidateError) -> (attributions: Tensor, report: String?) {
        let explanation = try handle.explainer.explain(method: methodName, options: options, inputs: inputs, targets: targets)
        guard explanation.attributions.shape == resultShape else {
            throw ElucidateError(.internalFailure,
                                 "the attributions have shape \(explanation.attributions.shape), \(resultShape) was announced")
        }
        return (explanation.attributions, wanted ? try explanation.reportJSON() : nil)
    }
}

/// Writes `shape` to the caller's `ELU_MAX_RANK` entries and `*rank`: entries past the rank are
/// 1, so the product of all of them is the element count.
func write(shape: [Int], to out: UnsafeMutablePointer<Int64>, rank: UnsafeMutablePointer<Int32>) {
    for axis in 0..<maximumRank { out[axis] = axis < shape.count ? Int64(shape[axis]) : 1 }
    rank.pointee = Int32(shape.count)
}

/// Hands `report` to the caller's `*report_json` (when asked for).
func returnReport(_ report: String?, to reportJSON: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws(ElucidateError) {
    guard let reportJSON, let report else { return }
    guard let text = copyCString(report) else { throw ElucidateError(.internalFailure, "out of memory") }
    reportJSON.pointee = text
}

/// `elu_attribution_shape` of elucidate.h: `Explainer.attributionShape` for an input shape.
@_cdecl("elu_attribution_shape")
public func elu_attribution_shape(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?,
                                  _ optionsJSON: UnsafePointer<CChar>?, _ inputShape: UnsafePointer<Int64>?,
                                  _ attributionShape: UnsafeMutablePointer<Int64>?, _ rank: UnsafeMutablePointer<Int32>?,
                                  _ error: CErrorPointer) -> Int32 {
    run(error) { () throws(ElucidateError) in
        let handle = try modelHandle(model)
        let methodName = try string(method, "method")
        let options = try Options(json: try optionalString(optionsJSON, "options_json"))
        let input = try checkedShape(inputShape, channels: handle.classifier.network.inputChannels, name: "input_shape")
        guard let attributionShape else { throw invalid("attribution_shape is NULL") }
        guard let rank else { throw invalid("rank is NULL") }
        let shape = try handle.explainer.attributionShape(method: methodName, options: options, inputShape: input.dims)
        guard shape.count <= maximumRank else {
            throw ElucidateError(.internalFailure, "the attributions would have \(shape.count) dimensions, more than ELU_MAX_RANK")
        }
        write(shape: shape, to: attributionShape, rank: rank)
    }
}

/// `elu_explain_into` of elucidate.h: any method's attributions into the caller's buffer of
/// `capacity` floats, their shape to `attribution_shape` and `*rank`.
@_cdecl("elu_explain_into")
public func elu_explain_into(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                             _ input: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ targets: UnsafePointer<Int64>?,
                             _ attributions: UnsafeMutablePointer<Float>?, _ capacity: Int64,
                             _ attributionShape: UnsafeMutablePointer<Int64>?, _ rank: UnsafeMutablePointer<Int32>?,
                             _ reportJSON: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ error: CErrorPointer) -> Int32 {
    reportJSON?.pointee = nil
    return run(error) { () throws(ElucidateError) in
        guard let attributions else { throw invalid("attributions is NULL") }
        guard capacity >= 0 else { throw invalid("capacity \(capacity) is negative") }
        guard let attributionShape else { throw invalid("attribution_shape is NULL") }
        guard let rank else { throw invalid("rank is NULL") }
        let request = try ExplainRequest(model, method, optionsJSON, input, shape, targets)
        guard Int64(request.resultCount) <= capacity else {
            // The shape is what the caller needs to allocate: given even though the call fails.
            write(shape: request.resultShape, to: attributionShape, rank: rank)
            throw invalid("\(request.methodName) gives attributions of shape \(request.resultShape) (\(request.resultCount) values), the buffer holds \(capacity)")
        }
        let result = try request.run(reportJSON: reportJSON != nil)
        try copy(result.attributions, to: attributions, count: request.resultCount)
        write(shape: request.resultShape, to: attributionShape, rank: rank)
        try returnReport(result.report, to: reportJSON)
    }
}

/// `elu_explain_alloc` of elucidate.h: any method's attributions in a `malloc`ed buffer the
/// caller frees with `elu_tensor_free`, their shape to `attribution_shape` and `*rank`.
@_cdecl("elu_explain_alloc")
public func elu_explain_alloc(_ model: OpaquePointer?, _ method: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                              _ input: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ targets: UnsafePointer<Int64>?,
                              _ attributions: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                              _ attributionShape: UnsafeMutablePointer<Int64>?, _ rank: UnsafeMutablePointer<Int32>?,
                              _ reportJSON: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ error: CErrorPointer) -> Int32 {
    attributions?.pointee = nil
    reportJSON?.pointee = nil
    return run(error) { () throws(ElucidateError) in
        guard let attributions else { throw invalid("attributions is NULL") }
        guard let attributionShape else { throw invalid("attribution_shape is NULL") }
        guard let rank else { throw invalid("rank is NULL") }
        let request = try ExplainRequest(model, method, optionsJSON, input, shape, targets)
        let result = try request.run(reportJSON: reportJSON != nil)
        guard let buffer = malloc(max(1, request.resultCount) * MemoryLayout<Float>.stride)?.assumingMemoryBound(to: Float.self) else {
            throw ElucidateError(.internalFailure, "out of memory")
        }
        do throws(ElucidateError) {
            try copy(result.attributions, to: buffer, count: request.resultCount)
            try returnReport(result.report, to: reportJSON)
        } catch {
            free(buffer)
            throw error
        }
        write(shape: request.resultShape, to: attributionShape, rank: rank)
        attributions.pointee = buffer
    }
}
