// STUBS of the library's explain workflow (being written on the `workflow` branch), with the
// signatures the C API is written against. Minimal: enough to exercise the C plumbing
// (saliency, integrated-gradients, occlusion; the CLI's defaults). Deleted at the merge,
// when the real `Options`, `ModelLoader`, `Explainer`, `Explanation` and `Visualizer` land.
import Elucidate
import Foundation

public enum OptionValue: Sendable, Equatable {
    case number(Double), bool(Bool), string(String), array([OptionValue])
}

public struct Options: Sendable {
    public var values: [String: OptionValue]
    public init() { values = [:] }
    public init(_ values: [String: OptionValue]) { self.values = values }
    public init(json: String?) throws(ElucidateError) {
        guard let json, !json.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { values = [:]; return }
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw ElucidateError(.invalidArgument, "options are not a JSON object")
        }
        func convert(_ key: String, _ any: Any) throws(ElucidateError) -> OptionValue {
            if let n = any as? NSNumber {
                // JSON true/false come as NSNumber's boolean subclass (__NSCFBoolean).
                return String(describing: type(of: n)).contains("Boolean") ? .bool(n.boolValue) : .number(n.doubleValue)
            }
            if let s = any as? String { return .string(s) }
            if let a = any as? [Any] {
                var out: [OptionValue] = []
                for v in a { out.append(try convert(key, v)) }
                return .array(out)
            }
            throw ElucidateError(.invalidArgument, "option '\(key)' has a value of an unsupported type")
        }
        var values: [String: OptionValue] = [:]
        for (key, any) in object { values[key] = try convert(key, any) }
        self.values = values
    }

    func require(only known: Set<String>, for what: String) throws(ElucidateError) {
        if let key = values.keys.sorted().first(where: { !known.contains($0) }) {
            throw ElucidateError(.invalidArgument, "unknown option '\(key)' for \(what)")
        }
    }
    func string(_ key: String) throws(ElucidateError) -> String? {
        switch values[key] {
        case nil: return nil
        case .string(let s)?: return s
        case .number(let n)?: return n == n.rounded() ? String(Int(n)) : String(n)
        default: throw ElucidateError(.invalidArgument, "option '\(key)' must be a string")
        }
    }
    func int(_ key: String) throws(ElucidateError) -> Int? {
        switch values[key] {
        case nil: return nil
        case .number(let n)? where n == n.rounded() && abs(n) < 1e15: return Int(n)
        case .string(let s)? where Int(s) != nil: return Int(s)
        default: throw ElucidateError(.invalidArgument, "option '\(key)' must be an integer")
        }
    }
}

public enum ModelLoader {
    public static func load(_ pathOrBuiltinName: String, options: Options) throws(ElucidateError) -> Classifier {
        try options.require(only: ["arch", "labels"], for: "loading a model")
        let url = URL(fileURLWithPath: pathOrBuiltinName)
        let file = BuiltinModels.model(named: pathOrBuiltinName) != nil && !FileManager.default.fileExists(atPath: url.path)
            ? try BuiltinModels.url(for: pathOrBuiltinName) : url
        var classifier = try Classifier.load(from: file, architecture: try options.string("arch"))
        if let labels = try options.string("labels") { try classifier.loadLabels(from: URL(fileURLWithPath: labels)) }
        return classifier
    }
}

extension Classifier {
    public func inputTensor(imageAt path: String, options: Options) throws(ElucidateError) -> Tensor {
        try options.require(only: ["preset", "exif"], for: "reading an image")
        let preset = try options.string("preset").map { name throws(ElucidateError) in
            guard let p = PreprocessingPreset(rawValue: name) else { throw ElucidateError(.invalidArgument, "unknown preset '\(name)'") }
            return p
        } ?? self.preset ?? .torchvision
        let url = URL(fileURLWithPath: path)
        try requireRegularFile(url, expected: "a JPEG or PNG image")
        let image = try ImageDecoder.load(url, exif: try options.string("exif").flatMap(ExifRule.init(rawValue:)) ?? .ignore)
        do { return try Preprocessor(preset: preset).tensor(from: image) } catch { throw error.at(path) }
    }
}

public struct Explainer: Sendable {
    public let classifier: Classifier
    public init(classifier: Classifier) { self.classifier = classifier }

    public func explain(method: String, options: Options, inputs: Tensor, targets: [Int]?) throws(ElucidateError) -> Explanation {
        let logits = try classifier.logits(inputs)
        let targets = targets ?? classifier.topClasses(logits: logits, k: 1).map { $0[0].index }
        let attribution: Attribution
        switch method {
        case "saliency":
            try options.require(only: [], for: method)
            attribution = try Saliency().attribute(classifier, inputs: inputs, targets: targets)
        case "integrated-gradients":
            try options.require(only: ["steps"], for: method)
            attribution = try IntegratedGradients(steps: try options.int("steps") ?? 50).attribute(classifier, inputs: inputs, targets: targets)
        case "occlusion":
            try options.require(only: ["window", "stride"], for: method)
            func triple(_ key: String, _ fallback: String) throws(ElucidateError) -> [Int] {
                let parts = (try options.string(key) ?? fallback).split(separator: ",").compactMap { Int($0) }
                guard parts.count == 3, parts.allSatisfy({ $0 > 0 }) else {
                    throw ElucidateError(.invalidArgument, "--\(key) must be three positive integers C,H,W")
                }
                return parts
            }
            let occlusion = Occlusion(window: try triple("window", "3,15,15"), stride: try triple("stride", "3,8,8"))
            _ = try occlusion.windowCount(rowShape: Array(inputs.shape.dropFirst()))
            attribution = try occlusion.attribute(classifier, inputs: inputs, targets: targets)
        default:
            throw ElucidateError(.invalidArgument, "unknown method '\(method)'")
        }
        try attribution.requireFinite(method: method)
        return Explanation(attributions: attribution.values, method: method, targets: targets)
    }
}

public struct Explanation: Sendable {
    public let attributions: Tensor
    let method: String
    let targets: [Int]
    public func reportJSON() throws(ElucidateError) -> String {
        "{\"method\":\"\(method)\",\"shape\":\(attributions.shape),\"targets\":\(targets)}"
    }
}

public enum Visualizer {
    public static func write(attributions: Tensor, input: Tensor, classifier: Classifier, options: Options,
                             to path: String) throws(ElucidateError) {
        try options.require(only: ["panels", "outlier-perc", "preset"], for: "a picture")
        let preset = try options.string("preset").flatMap(PreprocessingPreset.init(rawValue:)) ?? classifier.preset ?? .torchvision
        var panels: [VisualizationPanel] = []
        for spec in (try options.string("panels") ?? "heat-map:absolute-value").split(separator: ",") {
            panels.append(try VisualizationPanel.parse(String(spec)))
        }
        var style = VisualizationStyle()
        if case .number(let p)? = options.values["outlier-perc"] { style.outlierPercentage = p }
        try style.validate()
        let photo = try VisualizationPhoto.denormalized(input, preset: preset)
        let figure = try AttributionFigure.draw(attributions: attributions, index: 0, photo: photo, panels: panels, style: style)
        try figure.write(to: URL(fileURLWithPath: path))
    }
}
