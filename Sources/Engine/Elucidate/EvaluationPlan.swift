import Foundation

/// The metrics of `elucidate evaluate` (`Evaluator`), by their command-line names.
public enum EvaluationMetric: String, Sendable, CaseIterable {
    /// RISE's deletion curve and AUC (`PixelRemoval`, lower is better).
    case deletion
    /// RISE's insertion curve and AUC (`PixelRemoval`, higher is better).
    case insertion
    /// Captum's infidelity (`Infidelity`, lower is better).
    case infidelity
    /// Captum's sensitivity-max (`SensitivityMax`, lower is better).
    case sensitivityMax = "sensitivity-max"

    /// The metric named `name`, or an error listing the known names.
    public static func named(_ name: String) throws(ElucidateError) -> EvaluationMetric {
        try named(name, kind: "metric")
    }
}

/// A metric and its options, read and checked without touching any file or model.
///
/// Options by command-line name: `target` (as `explain`'s), `batch-size` (model inputs per
/// call, default 16; 10 for sensitivity-max); deletion and insertion: `steps` (default 50),
/// `baseline` (`0`, a number, `blur` or a `.npy` file `[C, H, W]`; default 0 for deletion, RISE's
/// blur for insertion); infidelity: `perturbations` (a `.npy` file `[S, C, H, W]`) or
/// `noise-stdev` (Gaussian, default 0.1) with `samples` (default 10) and `seed`, and `normalize`;
/// sensitivity-max: `radius` (default 0.02), `samples` (default 10), `seed`, or `perturbations`.
/// An option the metric does not take is an error.
public struct EvaluationPlan: Sendable {
    /// The metric to compute.
    public let metric: EvaluationMetric
    /// Which class each row is evaluated for.
    public let target: TargetChoice
    /// The options as the report records them (defaults included).
    public let recorded: [String: String]
    let settings: Settings

    /// What a metric needs besides its files.
    enum Settings: Sendable {
        case removal(PixelRemoval.Direction, steps: Int, baseline: String?, batchSize: Int)
        case infidelity(perturbations: String?, stdev: Float, samples: Int, seed: UInt64, normalize: Bool, batchSize: Int)
        case sensitivity(perturbations: String?, radius: Float, samples: Int, seed: UInt64, batchSize: Int)
    }

    /// Reads `options` for `metric` (a name such as `deletion`); refuses bad values and
    /// options the metric does not take.
    public init(metric name: String, options: Options = Options()) throws(ElucidateError) {
        metric = try EvaluationMetric.named(name)
        var reader = OptionReader(options)
        var target = TargetChoice.predicted
        if let text = try reader.string("target") { target = try TargetChoice(parsing: text) }
        self.target = target
        var recorded: [String: String] = [:]
        func positive(_ option: String, default fallback: Int) throws(ElucidateError) -> Int {
            let value = try reader.int(option, default: fallback)
            guard value >= 1 else { throw ElucidateError(.invalidArgument, "--\(option) must be at least 1") }
            recorded[option] = String(value)
            return value
        }
        func seed() throws(ElucidateError) -> UInt64 {
            let value = try reader.value(of: "seed", as: UInt64.self) ?? SeededRandom.randomSeed()
            recorded["seed"] = String(value)
            return value
        }
        func nonNegative(_ option: String, default fallback: Float) throws(ElucidateError) -> Float {
            let value = try reader.float(option, default: fallback)
            guard value >= 0, value.isFinite else { throw ElucidateError(.invalidArgument, "--\(option) must be a number ≥ 0") }
            recorded[option] = String(value)
            return value
        }
        switch metric {
        case .deletion, .insertion:
            let direction: PixelRemoval.Direction = metric == .deletion ? .deletion : .insertion
            let steps = try positive("steps", default: 50)
            let baseline = try reader.string("baseline")
            if let baseline { _ = try Self.baselineKind(baseline) }
            recorded["baseline"] = baseline ?? PixelRemoval(direction).baseline.description
            settings = .removal(direction, steps: steps, baseline: baseline, batchSize: try positive("batch-size", default: 16))
        case .infidelity:
            let file = try reader.string("perturbations")
            let given = reader.has("noise-stdev") || reader.has("samples") || reader.has("seed")
            if file != nil, given {
                throw ElucidateError(.invalidArgument, "--perturbations gives the perturbations: --noise-stdev, --samples and --seed do not apply")
            }
            let stdev = file == nil ? try nonNegative("noise-stdev", default: 0.1) : 0
            let samples = file == nil ? try positive("samples", default: 10) : 0
            let seed = file == nil ? try seed() : 0
            if let file { recorded["perturbations"] = file }
            let normalize = try reader.bool("normalize")
            recorded["normalize"] = String(normalize)
            settings = .infidelity(perturbations: file, stdev: stdev, samples: samples, seed: seed, normalize: normalize,
                                   batchSize: try positive("batch-size", default: 16))
        case .sensitivityMax:
            let file = try reader.string("perturbations")
            if file != nil, reader.has("radius") || reader.has("samples") || reader.has("seed") {
                throw ElucidateError(.invalidArgument, "--perturbations gives the noise: --radius, --samples and --seed do not apply")
            }
            let radius = file == nil ? try nonNegative("radius", default: 0.02) : 0
            let samples = file == nil ? try positive("samples", default: 10) : 0
            let seed = file == nil ? try seed() : 0
            if let file { recorded["perturbations"] = file }
            settings = .sensitivity(perturbations: file, radius: radius, samples: samples, seed: seed,
                                    batchSize: try positive("batch-size", default: 10))
        }
        try reader.finish(context: name)
        self.recorded = recorded
    }

    /// The files the metric will read (a baseline image, perturbations).
    public var inputFiles: [String] {
        switch settings {
        case .removal(_, _, let baseline, _):
            guard let baseline, baseline.hasSuffix(".npy") else { return [] }  // a file, as baselineKind reads it
            return [baseline]
        case .infidelity(let file, _, _, _, _, _), .sensitivity(let file, _, _, _, _):
            return file.map { [$0] } ?? []
        }
    }

    /// `0`, a number or `blur` as a baseline; nil for a file name (`.npy`); an error otherwise.
    static func baselineKind(_ text: String) throws(ElucidateError) -> RemovalBaseline? {
        if text == "blur" { return .blur }
        if let value = Float(text) {
            guard value.isFinite else { throw ElucidateError(.invalidArgument, "--baseline must be finite, got '\(text)'") }
            return .constant(value)
        }
        guard text.hasSuffix(".npy") else {
            throw ElucidateError(.invalidArgument, "--baseline must be 0, a number, blur or a .npy file, got '\(text)'")
        }
        return nil
    }

    /// The metric with its files read.
    func metricValue() throws(ElucidateError) -> PreparedMetric {
        func read(_ file: String, what: String) throws(ElucidateError) -> Tensor {
            try NPY.readFiniteFloat32(URL(fileURLWithPath: file), what: what)
        }
        switch settings {
        case .removal(let direction, let steps, let baselineText, let batchSize):
            var baseline: RemovalBaseline?
            if let baselineText {
                baseline = try Self.baselineKind(baselineText)
                if baseline == nil { baseline = .image(try read(baselineText, what: "the baseline")) }
            }
            return .removal(PixelRemoval(direction, steps: steps, baseline: baseline, batchSize: batchSize))
        case .infidelity(let file, let stdev, let samples, let seed, let normalize, let batchSize):
            var perturbations = Infidelity.Perturbations.gaussian(stdev: stdev, samples: samples, seed: seed)
            if let file { perturbations = .given(try read(file, what: "the perturbations")) }
            return .infidelity(Infidelity(perturbations: perturbations, normalize: normalize, batchSize: batchSize))
        case .sensitivity(let file, let radius, let samples, let seed, let batchSize):
            var perturbations = SensitivityMax.Perturbations.uniform(radius: radius, samples: samples, seed: seed)
            if let file { perturbations = .given(try read(file, what: "the perturbations")) }
            return .sensitivity(SensitivityMax(perturbations: perturbations, batchSize: batchSize))
        }
    }
}

/// A metric ready to run: its files read.
enum PreparedMetric {
    case removal(PixelRemoval)
    case infidelity(Infidelity)
    case sensitivity(SensitivityMax)
}
