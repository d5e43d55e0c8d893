// elu_evaluate of elucidate.h: `elucidate evaluate METRIC --json` from C — a metric, the sanity
// check or compare — through the library's EvaluationRequest and Evaluator.
import Elucidate
import Foundation

/// `elu_evaluate` of elucidate.h: scores the caller's `[N, C, H, W]` input with `metric`, on the
/// caller's maps (`attributions` of `attribution_shape`, one row per input) or on the maps of
/// the options' `method`, and returns the JSON report `elucidate evaluate METRIC --json` prints.
@_cdecl("elu_evaluate")
public func elu_evaluate(_ model: OpaquePointer?, _ metric: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                         _ input: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?,
                         _ attributions: UnsafePointer<Float>?, _ attributionShape: UnsafePointer<Int64>?,
                         _ reportJSON: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ error: CErrorPointer) -> Int32 {
    reportJSON?.pointee = nil
    return run(error) { () throws(ElucidateError) in
        let handle = try modelHandle(model)
        let name = try string(metric, "metric")
        guard let reportJSON else { throw invalid("report_json is NULL") }
        let options = try Options(json: try optionalString(optionsJSON, "options_json"))
        // Every option is checked before the input is copied or any model work is done.
        let request = try EvaluationRequest(name, options: options, attributionsGiven: attributions != nil)
        let checked = try checkedShape(shape, channels: handle.classifier.network.inputChannels)
        let inputs = try tensor(input, "input", checked)
        var maps: Tensor?
        if let attributions {
            // Deletion and insertion take maps of any channel count; the metric checks the rest.
            let mapShape = try checkedShape(attributionShape, channels: nil, name: "attribution_shape")
            guard mapShape.dims[0] == checked.dims[0] else {
                throw invalid("the attributions hold \(mapShape.dims[0]) rows and the input \(checked.dims[0])")
            }
            maps = try tensor(attributions, "attributions", mapShape)
        }
        let evaluator = Evaluator(classifier: handle.classifier, modelName: handle.explainer.modelName)
        let result = try request.run(evaluator, inputs: .tensor(inputs), attributions: maps)
        try returnReport(try result.reportJSON(), to: reportJSON)
    }
}
