import Foundation

/// Any `elucidate evaluate` subcommand — a metric (`EvaluationMetric`), `sanity` or `compare` —
/// with its options by the command line's long names, checked without touching a file or the
/// model: what the C API's `elu_evaluate` takes, and what the command line checks its flags with.
///
/// Options besides the metric's own (`EvaluationPlan`): `method` (an `explain` method that makes
/// the maps, instead of given attributions) with `method-options` (the method's options as a JSON
/// object, in a string, as `--method-options` takes them) and `images-per-batch` (inputs read and
/// evaluated together, `EvaluationInputs.imagesPerBatch`). `sanity` takes `method`,
/// `method-options`, `target` and `seed`; `compare` takes `methods` (comma-separated, or an
/// array) and `seed`. A seed not given is drawn at random and reported.
public struct EvaluationRequest: Sendable {
    /// What to run.
    public enum Kind: Sendable {
        /// A metric with its plan.
        case metric(EvaluationPlan)
        /// The sanity check of `method` with its options (the target among them).
        case sanity(method: String, options: Options, seed: UInt64)
        /// Methods side by side on every metric.
        case compare(methods: [String], seed: UInt64)
    }

    /// What to run.
    public let kind: Kind
    /// The method making a metric's maps and its options, nil for given maps (and for sanity
    /// and compare, whose `kind` holds their methods).
    public let method: (name: String, options: Options)?
    /// Inputs read and evaluated together, when given.
    public let imagesPerBatch: Int?

    /// Reads `options` for the subcommand `name`; `attributionsGiven` says whether maps come
    /// with the inputs (a metric needs maps or a method, not both; sanity and compare take none).
    public init(_ name: String, options: Options = Options(), attributionsGiven: Bool) throws(ElucidateError) {
        // One reader for sanity's and compare's options, so that an unknown one is named with
        // every known one; a metric's own go to its plan, without the shared ones.
        var reader = OptionReader(options)
        let methodName = try reader.string("method")
        let methodText = try reader.string("method-options")
        imagesPerBatch = try reader.int("images-per-batch")
        if let imagesPerBatch, imagesPerBatch < 1 {
            throw ElucidateError(.invalidArgument, "--images-per-batch must be at least 1")
        }
        if methodText != nil && methodName == nil { throw ElucidateError(.invalidArgument, "--method-options needs --method") }
        var methodOptions = try Options(json: methodText)
        var rest = options
        for key in ["method", "method-options", "images-per-batch"] { rest.values[key] = nil }
        func seed() throws(ElucidateError) -> UInt64 {
            try reader.value(of: "seed", as: UInt64.self) ?? SeededRandom.randomSeed()
        }
        switch name {
        case "sanity":
            guard let methodName else {
                throw ElucidateError(.invalidArgument, "the sanity check recomputes the map: give --method NAME")
            }
            if attributionsGiven {
                throw ElucidateError(.invalidArgument, "--attributions does not apply to sanity, which recomputes the map")
            }
            if reader.has("batch-size") { throw ElucidateError(.invalidArgument, "--batch-size does not apply to sanity") }
            let seed = try seed()
            if let target = try reader.string("target") { methodOptions["target"] = .string(target) }
            try reader.finish(context: "sanity")
            _ = try ExplanationPlan(method: methodName, options: methodOptions)
            kind = .sanity(method: methodName, options: methodOptions, seed: seed)
            method = nil
        case "compare":
            if methodName != nil { throw ElucidateError(.invalidArgument, "compare takes --methods A,B,…, not --method") }
            if attributionsGiven {
                throw ElucidateError(.invalidArgument, "--attributions does not apply to compare, which computes each method's maps")
            }
            let methods = (try reader.string("methods") ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if methods.isEmpty { throw ElucidateError(.invalidArgument, "--methods needs at least one method") }
            let seed = try seed()
            try reader.finish(context: "compare")
            for method in methods { _ = try ExplanationPlan(method: method, options: Options()) }
            kind = .compare(methods: methods, seed: seed)
            method = nil
        default:
            guard EvaluationMetric(rawValue: name) != nil else {
                let known = EvaluationMetric.allCases.map(\.rawValue) + ["sanity", "compare"]
                throw ElucidateError(.invalidArgument, "unknown metric '\(name)' (known: \(known.joined(separator: ", ")))")
            }
            let plan = try EvaluationPlan(metric: name, options: rest)
            if !attributionsGiven && methodName == nil {
                throw ElucidateError(.invalidArgument, "give --attributions FILE.npy or --method NAME")
            }
            if attributionsGiven && methodName != nil {
                throw ElucidateError(.invalidArgument, "give --attributions or --method, not both")
            }
            if plan.metric == .sensitivityMax && methodName == nil {
                throw ElucidateError(.invalidArgument, "sensitivity-max recomputes the map on noisy inputs: give --method NAME")
            }
            if let methodName { _ = try ExplanationPlan(method: methodName, options: methodOptions) }
            kind = .metric(plan)
            method = methodName.map { ($0, methodOptions) }
        }
    }

    /// The files the run will read besides the inputs and the model (a baseline, perturbations).
    public var inputFiles: [String] {
        if case .metric(let plan) = kind { return plan.inputFiles }
        return []
    }

    /// Runs the request with `evaluator` on `inputs` (`imagesPerBatch`, when given, replacing
    /// theirs) and `attributions` (one row per input; nil when a method makes the maps).
    public func run(_ evaluator: Evaluator, inputs: EvaluationInputs, attributions: Tensor?) throws(ElucidateError) -> EvaluationResult {
        var inputs = inputs
        if let imagesPerBatch { inputs.imagesPerBatch = imagesPerBatch }
        switch kind {
        case .metric(let plan):
            let source: AttributionSource
            if let method { source = .method(method.name, method.options) } else if let attributions { source = .given(attributions) } else {
                throw ElucidateError(.invalidArgument, "give --attributions FILE.npy or --method NAME")
            }
            return .metric(try evaluator.evaluate(plan, inputs: inputs, attributions: source))
        case .sanity(let method, let options, let seed):
            return .sanity(try evaluator.sanityCheck(method: method, options: options, inputs: inputs, seed: seed))
        case .compare(let methods, let seed):
            return .compare(try evaluator.compare(methods: methods, inputs: inputs, seed: seed))
        }
    }
}

/// What an `EvaluationRequest` gives.
public enum EvaluationResult: Sendable {
    /// A metric's evaluation.
    case metric(Evaluation)
    /// The sanity check.
    case sanity(SanityCheck)
    /// Methods compared.
    case compare(ComparisonReport)

    /// The report as `elucidate evaluate … --json` prints it.
    public func reportJSON() throws(ElucidateError) -> String {
        switch self {
        case .metric(let evaluation): try evaluation.reportJSON()
        case .sanity(let check): try JSONOutput.string(check.report)
        case .compare(let report): try JSONOutput.string(report)
        }
    }
}
