import Elucidate
import Foundation

/// Classifiers with `DeterministicWeights` (tools/resnet.py's `deterministic_model`), built
/// once per architecture and class count: building the weights costs seconds in debug builds.
public enum DeterministicClassifier {
    nonisolated(unsafe) private static var built: [String: Classifier] = [:]
    private static let lock = NSLock()

    /// The classifier for `arch` (e.g. `resnet34`) with `classes` outputs; its source is named
    /// `ARCH-CLASSES.safetensors`, a file that does not exist.
    public static func classifier(_ arch: String, classes: Int) throws -> Classifier {
        lock.lock()
        defer { lock.unlock() }
        let key = "\(arch)-\(classes)"
        if let classifier = built[key] { return classifier }
        guard let architecture = ResNetArchitecture.named(arch) else {
            throw ElucidateError(.unknownArchitecture, "unknown architecture '\(arch)'")
        }
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(architecture, classes: classes))
        let classifier = Classifier(network: network, source: URL(fileURLWithPath: "\(key).safetensors"))
        built[key] = classifier
        return classifier
    }
}
