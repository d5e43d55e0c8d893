import Foundation

/// One ranked class of a prediction.
public struct ClassScore: Sendable, Equatable, Codable {
    public let index: Int
    public let label: String?
    public let probability: Float
    public let logit: Float
}

/// A trained image classifier loaded from disk: the network plus what the file says about
/// it (class labels, preprocessing preset).
public struct Classifier: Sendable {
    public let network: ResNet
    /// One label per class, when the weights file or a labels file provides them.
    public var labels: [String]?
    /// The preprocessing the model was trained with, when the weights file records it.
    public let preset: PreprocessingPreset?
    /// Where the weights came from.
    public let source: URL

    public var architecture: ResNetArchitecture { network.architecture }
    public var classes: Int { network.classes }

    public init(network: ResNet, labels: [String]? = nil, preset: PreprocessingPreset? = nil, source: URL) {
        self.network = network
        self.labels = labels
        self.preset = preset
        self.source = source
    }

    /// Loads weights from a `.safetensors` file or a PyTorch checkpoint (`.pth`/`.pt` as
    /// `torch.save` writes it), chosen by the file's contents, not its name.
    ///
    /// - Parameter architecture: a name from `ResNetArchitecture.named` (e.g. `resnet34`) to
    ///   check the file against; nil infers the architecture from the keys and shapes.
    /// - Throws: a one-line `ElucidateError` naming the file and what is wrong with it.
    public static func load(from url: URL, architecture: String? = nil) throws(ElucidateError) -> Classifier {
        do throws(ElucidateError) {
            let metadata: [String: String]
            let stateDict: StateDict
            if TorchCheckpoint.looksLikeCheckpoint(at: url) {
                // A ZIP archive (or the legacy format, refused with advice). No metadata.
                metadata = [:]
                stateDict = try TorchCheckpoint.load(url)
            } else {
                let file = try SafetensorsFile(url: url)
                metadata = file.metadata
                stateDict = StateDict(try file.floatTensors()).strippingPrefix("module.")
            }
            var arch: ResNetArchitecture
            if let name = architecture ?? metadata["arch"] {
                arch = try ResNetArchitecture.parse(name)
            } else {
                arch = try ResNet.inferArchitecture(stateDict)
            }
            if let stem = metadata["stem"] {
                guard let known = ResNetArchitecture.Stem(rawValue: stem) else {
                    throw ElucidateError(.invalidFormat, "metadata names an unknown stem '\(stem)'")
                }
                arch.stem = known
            }
            let network = try ResNet(stateDict: stateDict, architecture: arch)
            var labels: [String]?
            if let json = metadata["labels"] {
                labels = try parseLabels(json: json, classes: network.classes)
            }
            var preset: PreprocessingPreset?
            if let name = metadata["preset"] {
                guard let known = PreprocessingPreset(rawValue: name) else {
                    throw ElucidateError(.invalidFormat, "metadata names an unknown preprocessing preset '\(name)'")
                }
                preset = known
            }
            return Classifier(network: network, labels: labels, preset: preset, source: url)
        } catch {
            throw error.at(url.path)
        }
    }

    /// Reads a labels file: one label per line, as many lines as the model has classes.
    public mutating func loadLabels(from url: URL) throws(ElucidateError) {
        let data = try readFileBytes(url)
        guard let text = String(data: data, encoding: .utf8) else {
            throw ElucidateError(.invalidFormat, "labels file is not UTF-8 text", path: url.path)
        }
        var lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        while lines.last == "" { lines.removeLast() }
        guard lines.count == classes else {
            throw ElucidateError(.invalidArgument,
                                 "labels file has \(lines.count) lines but the model has \(classes) classes",
                                 path: url.path)
        }
        labels = lines
    }

    private static func parseLabels(json: String, classes: Int) throws(ElucidateError) -> [String] {
        guard let data = json.data(using: .utf8),
              let array = try? JSONSerialization.jsonObject(with: data) as? [String] else {
            throw ElucidateError(.invalidFormat, "metadata 'labels' is not a JSON array of strings")
        }
        guard array.count == classes else {
            throw ElucidateError(.invalidFormat, "metadata has \(array.count) labels but the model has \(classes) classes")
        }
        return array
    }

    /// Logits `[N, classes]` for a batch `[N, C, H, W]` of preprocessed images.
    public func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try network.logits(input)
    }

    /// The `k` most probable classes of each row of `logits` (`[N, classes]`), best first.
    public func topClasses(logits: Tensor, k: Int) -> [[ClassScore]] {
        precondition(logits.rank == 2 && logits.shape[1] == classes, "logits must be [N, \(classes)]")
        let probabilities = logits.softmax()
        let n = logits.shape[0]
        return (0..<n).map { row in
            let offset = row * classes
            let order = (0..<classes).sorted {
                let (a, b) = (probabilities.storage.pointer[offset + $0], probabilities.storage.pointer[offset + $1])
                return a != b ? a > b : $0 < $1
            }
            return order.prefix(max(0, k)).map { index in
                ClassScore(index: index, label: labels?[index],
                           probability: probabilities.storage.pointer[offset + index],
                           logit: logits.storage.pointer[offset + index])
            }
        }
    }
}
