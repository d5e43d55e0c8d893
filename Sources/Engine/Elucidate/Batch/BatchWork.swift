import Foundation

/// A batch run's job made ready: the method's plan prepared once (its files read), or the
/// prediction; runs one batch of rows and returns their records and attributions.
struct BatchWork: Sendable {
    /// One row's record (no files named yet) and, for a method, its attributions `[1, …]`.
    struct Row {
        var record: IndexRecord
        var attributions: Tensor?
    }

    private let classifier: Classifier
    private let explainer: Explainer
    private let preset: PreprocessingPreset
    /// The method, its options (the seed always given), the run's seed and the prepared plan; nil to predict.
    private let method: (name: String, options: Options, seed: UInt64, prepared: PreparedExplanation)?

    /// Checks the job's method and options and reads their files; the seed defaults to 0 so
    /// that a resumed or sharded run draws what a single run draws.
    init(job: BatchJob, classifier: Classifier, modelName: String, preset: PreprocessingPreset) throws(ElucidateError) {
        self.classifier = classifier
        self.explainer = Explainer(classifier: classifier, modelName: modelName)
        self.preset = preset
        switch job {
        case .predict:
            method = nil
        case .explain(let name, var options):
            if options["seed"] == nil { options["seed"] = .string("0") }
            let plan = try ExplanationPlan(method: name, options: options)
            method = (name, options, plan.settings.seed, try plan.prepared())
        }
    }

    /// How inputs go through the method.
    enum Grouping {
        /// Several inputs of one size together.
        case batched
        /// One input at a time: a method with a backward pass — the kernels' gradients of one
        /// row differ in the last bits with the rows beside it, while forward passes do not.
        case alone
        /// One input at a time, each with its own seed (`InputSeed`): a method that draws
        /// random numbers (a noise tunnel included).
        case aloneSeeded
    }

    /// How this job's inputs go through the method, so that an input's files never depend on
    /// its batch; judged on a first input `[1, C, H, W]` (when the method cannot be made for it,
    /// each input alone and seeded).
    func grouping(_ input: Tensor) -> Grouping {
        guard let method else { return .batched }
        return method.prepared.grouping(input, preset: preset)
    }

    /// The records of the rows of `inputs` `[N, C, H, W]` named `names`, explained for
    /// `targets` (or the run's target); `seededBy` runs the method with that input's own seed (`InputSeed`).
    func run(_ inputs: Tensor, names: [String], targets: [Int]?, source: String, exifOrientation: Int?,
             seededBy seedInput: BatchInput?) throws(ElucidateError) -> [Row] {
        guard let method else { return try predict(inputs, names: names, targets: targets, source: source) }
        var prepared = method.prepared
        if let seedInput {
            var options = method.options
            options["seed"] = .string(String(InputSeed.seed(method.seed, relativePath: seedInput.relativePath)))
            prepared = try ExplanationPlan(method: method.name, options: options).prepared()
        }
        let batch = ExplanationBatch(names: names, inputs: inputs, targets: targets, exifOrientation: exifOrientation,
                                     source: source)
        let explanation = try explainer.run(prepared, batches: [batch], preset: preset)
        return explanation.report.inputs.enumerated().map { row, report in
            var record = IndexRecord(input: report.input)
            record.target = report.target
            record.targetLabel = report.targetLabel
            record.predicted = report.predicted
            record.predictedLabel = report.predictedLabel
            record.probability = report.probability
            record.convergenceDelta = report.convergenceDelta
            return Row(record: record, attributions: explanation.attributions.rows(row..<(row + 1)))
        }
    }

    private func predict(_ inputs: Tensor, names: [String], targets: [Int]?, source: String) throws(ElucidateError) -> [Row] {
        guard inputs.shape[1] == classifier.network.inputChannels else {
            throw ElucidateError(.invalidArgument,
                                 "the input has \(inputs.shape[1]) channels, the model takes \(classifier.network.inputChannels)",
                                 path: source)
        }
        let logits = try classifier.logits(inputs)
        do { try logits.requireFinite("the model's output", advice: "its arithmetic overflows float32 on this input") } catch {
            throw error.at(source)
        }
        let best = classifier.topClasses(logits: logits, k: 1).map { $0[0] }
        return names.enumerated().map { row, name in
            var record = IndexRecord(input: name)
            if let target = targets?[row] {
                record.target = target
                record.targetLabel = classifier.labels?[target]
            }
            record.predicted = best[row].index
            record.predictedLabel = best[row].label
            record.probability = best[row].probability
            return Row(record: record, attributions: nil)
        }
    }
}

extension PreparedExplanation {
    /// How inputs go through this method so that an input's result never depends on the inputs
    /// beside it (`BatchWork.Grouping`), judged on a first input `[1, C, H, W]` under `preset`:
    /// a noise tunnel or random draws (or a method that cannot be made for it) alone and seeded,
    /// a backward pass alone, forward passes only together.
    func grouping(_ input: Tensor, preset: PreprocessingPreset) -> BatchWork.Grouping {
        if settings.noiseTunnel != nil { return .aloneSeeded }
        if (try? make(input, preset).isStochastic) ?? true { return .aloneSeeded }
        return method.isForwardOnly ? .batched : .alone
    }
}
