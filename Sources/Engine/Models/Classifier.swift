import ElucidateCore
import ElucidateIO
import ElucidateImage
import ElucidateNN
import Foundation

/// One ranked class of a prediction.
public struct ClassScore: Sendable, Equatable, Codable {
    /// The class index, 0-based, in the model's output order.
    public let index: Int
    /// The class's label, when the model has labels.
    public let label: String?
    /// Softmax probability of the class, in [0, 1].
    public let probability: Float
    /// The raw output (logit) for the class.
    public let logit: Float
}

/// A trained image classifier loaded from disk: the network plus what the file says about
/// it (class labels, preprocessing preset).
///
/// Sharing: a loaded classifier is immutable — its weights, folded batch norms and layers
/// never change after `load` — and the one cache it has (each 3×3 layer's Winograd-transformed
/// weights, made on first use) is filled once under a lock. So one classifier may be used by
/// any number of threads or tasks at once, each explanation giving the same floats, bit for
/// bit, as it would alone. Set `Runtime`'s settings (threads, Winograd, instruction set)
/// before the first call, not while explanations run.
public struct Classifier: Sendable {
    /// The ResNet that computes the logits.
    public let network: ResNet
    /// One label per class, when the weights file or a labels file provides them, exactly
    /// as the file has them: they may hold anything, terminal escape sequences included, so
    /// show them on a terminal through `TerminalText.escaped` (or `displayLabel(_:)`).
    public var labels: [String]?
    /// The preprocessing the model was trained with, when the weights file records it.
    public let preset: PreprocessingPreset?
    /// Where the weights came from.
    public let source: URL

    /// The network's layout (depth, block, stem, head).
    public var architecture: ResNetArchitecture { network.architecture }
    /// Number of classes: the length of a row of logits.
    public var classes: Int { network.classes }

    /// A classifier around a network already built (in code, or from a `StateDict`); `source`
    /// is what reports name as the model. `load(from:architecture:)` reads one from a file.
    public init(network: ResNet, labels: [String]? = nil, preset: PreprocessingPreset? = nil, source: URL) {
        self.network = network
        self.labels = labels
        self.preset = preset
        self.source = source
    }

    /// The weights and metadata of a `.safetensors` or `.pth` file, as `load(from:)` reads them
    /// (a safetensors file's `module.` prefix stripped; a checkpoint has no metadata); errors
    /// are not yet prefixed with the path.
    public static func readWeights(from url: URL) throws(ElucidateError) -> (stateDict: StateDict, metadata: [String: String]) {
        try requireRegularFile(url, expected: "a .safetensors or .pth weights file")
        if TorchCheckpoint.looksLikeCheckpoint(at: url) {
            // A ZIP archive (or the legacy format, refused with advice). No metadata.
            return (try TorchCheckpoint.load(url), [:])
        }
        let file = try SafetensorsFile(url: url)
        return (StateDict(try file.floatTensors()).strippingPrefix("module."), file.metadata)
    }

    /// Loads weights from a `.safetensors` file or a PyTorch checkpoint (`.pth`/`.pt` as
    /// `torch.save` writes it), chosen by the file's contents, not its name. Anything but a
    /// regular file (a device, a FIFO) is refused before it is opened.
    ///
    /// - Parameter architecture: a name from `ResNetArchitecture.named` (e.g. `resnet34`) to
    ///   check the file against; nil infers the architecture from the keys and shapes.
    /// - Throws: a one-line `ElucidateError` naming the file and what is wrong with it.
    public static func load(from url: URL, architecture: String? = nil) throws(ElucidateError) -> Classifier {
        do throws(ElucidateError) {
            let (stateDict, metadata) = try readWeights(from: url)
            var arch: ResNetArchitecture
            if let architecture {
                arch = try ResNetArchitecture.parse(architecture)
            } else if let name = metadata["arch"] {
                do { arch = try ResNetArchitecture.parse(name) } catch {
                    // The name comes from the file: shown escaped.
                    throw ElucidateError(error.kind, "metadata: " + error.message.replacingOccurrences(
                        of: "'\(name)'", with: "'\(TerminalText.escaped(name, limit: 200))'"))
                }
            } else {
                arch = try ResNet.inferArchitecture(stateDict)
            }
            if let stem = metadata["stem"] {
                guard let known = ResNetArchitecture.Stem(rawValue: stem) else {
                    throw ElucidateError(.invalidFormat, "metadata names an unknown stem '\(TerminalText.escaped(stem, limit: 200))'")
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
                    throw ElucidateError(.invalidFormat, "metadata names an unknown preprocessing preset '\(TerminalText.escaped(name, limit: 200))'")
                }
                preset = known
            }
            return Classifier(network: network, labels: labels, preset: preset, source: url)
        } catch {
            throw error.at(url.path)
        }
    }

    /// The largest labels file read (a million classes of 60 bytes).
    public static let maximumLabelsFileSize = 64 << 20

    /// Reads a labels file: one label per line, as many lines as the model has classes.
    /// Only a regular file is read, up to `maximumLabelsFileSize` bytes.
    public mutating func loadLabels(from url: URL) throws(ElucidateError) {
        let data = try readFileBytes(url, expected: "a text file of labels, one per line")
        guard data.count <= Self.maximumLabelsFileSize else {
            throw ElucidateError(.invalidArgument,
                                 "labels file is \(data.count) bytes, more than the \(Self.maximumLabelsFileSize) a labels file may have",
                                 path: url.path)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ElucidateError(.invalidFormat, "labels file is not UTF-8 text", path: url.path)
        }
        // Split on the scalar "\n": as Characters, "\r\n" is one that is not "\n".
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(line.last == "\r" ? line.dropLast() : line)
        }
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

    /// The label of class `index` for a terminal: control characters escaped (see
    /// `TerminalText`), or nil when the classifier has no labels.
    public func displayLabel(_ index: Int) -> String? {
        labels.map { TerminalText.escaped($0[index]) }
    }

    /// Logits `[N, classes]` for a batch `[N, C, H, W]` of preprocessed images.
    public func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try network.logits(input)
    }

    /// The `k` most probable classes of each row of `logits` (`[N, classes]`), best first.
    public func topClasses(logits: Tensor, k: Int) -> [[ClassScore]] {
        precondition(logits.rank == 2 && logits.shape[1] == classes, "logits must be [N, \(classes)]")
        let probabilities = logits.softmax().scalars
        let values = logits.scalars
        let n = logits.shape[0]
        return (0..<n).map { row in
            let offset = row * classes
            let order = (0..<classes).sorted {
                let (a, b) = (probabilities[offset + $0], probabilities[offset + $1])
                return a != b ? a > b : $0 < $1
            }
            return order.prefix(max(0, k)).map { index in
                ClassScore(index: index, label: labels?[index],
                           probability: probabilities[offset + index], logit: values[offset + index])
            }
        }
    }
}
