import CKernels
import ElucidateCore
import ElucidateIO
import ElucidateImage
import ElucidateNN
import Foundation

/// The models that ship with Elucidate, so it explains something with nothing downloaded.
///
/// The weights are a SwiftPM resource of the ElucidateModels target
/// (`Sources/Engine/Models/Resources/models/`), copied next to the built binaries in
/// `Elucidate_ElucidateModels.resources/models/` (`resourceBundleName`). They are looked up,
/// in order, in `$ELUCIDATE_MODELS_DIR`, in that resource folder beside the running
/// executable, in `../share/elucidate/models` from the library or executable this code is in
/// (an install by tools/install.sh), and in the source tree this module was built from.
public enum BuiltinModels {
    /// One built-in model: its name, weights file and what it is.
    public struct Model: Sendable {
        /// What `--model` accepts, e.g. `fashion-mnist-resnet`.
        public let name: String
        /// The weights file's name in the search folders, e.g. `fashion-mnist-resnet.safetensors`.
        public let file: String
        /// One line for `elucidate models`: architecture, training data, input, classes, preset.
        public let summary: String
    }

    /// The default model of the command line.
    public static let defaultName = "fashion-mnist-resnet"

    /// Every built-in model, in the order `elucidate models` lists them.
    public static let all: [Model] = [
        Model(name: "fashion-mnist-resnet", file: "fashion-mnist-resnet.safetensors",
              summary: "ResNet (BasicBlock 1-1-1-1, widths 16-32-64-128, 3×3 stride-1 stem) trained on Fashion-MNIST "
                       + "by tools/train_builtin.py: 28×28 gray images replicated to 3 channels, 10 classes, preset fashion-mnist"),
    ]

    /// The built-in model called `name` (case-insensitive), or nil.
    public static func model(named name: String) -> Model? {
        all.first { $0.name == name.lowercased() }
    }

    /// The folder SwiftPM copies this target's resources to, beside the built binaries:
    /// `<package>_<target>.resources`.
    package static let resourceBundleName = "Elucidate_ElucidateModels.resources"

    /// Folders searched for the weights, most specific first.
    public static var searchDirectories: [URL] {
        var result: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["ELUCIDATE_MODELS_DIR"], !dir.isEmpty {
            result.append(URL(fileURLWithPath: dir))
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        for base in [Bundle.main.executableURL?.resolvingSymlinksInPath(), executable].compactMap({ $0 }) {
            result.append(base.deletingLastPathComponent()
                .appendingPathComponent(resourceBundleName).appendingPathComponent("models"))
        }
        // An installed prefix (tools/install.sh): PREFIX/share/elucidate/models, found from
        // PREFIX/bin/elucidate or from the library this code is in (PREFIX/lib/libelucidate.so).
        for file in [loadedImagePath.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath() }, executable].compactMap({ $0 }) {
            result.append(file.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("share/elucidate/models"))
        }
        result.append(URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Sources/Engine/Models
            .appendingPathComponent("Resources").appendingPathComponent("models"))
        var seen = Set<String>()
        return result.filter { seen.insert($0.standardizedFileURL.path).inserted }
    }

    /// The file (shared library or executable) this code was loaded from.
    static var loadedImagePath: String? {
        ek_loaded_image_path().map { String(cString: $0) }
    }

    /// The weights file of a built-in model, or an error saying where it was looked for.
    public static func url(for name: String) throws(ElucidateError) -> URL {
        guard let model = model(named: name) else {
            throw ElucidateError(.invalidArgument,
                                 "no built-in model '\(name)' (built in: \(all.map(\.name).joined(separator: ", ")))")
        }
        let candidates = searchDirectories.map { $0.appendingPathComponent(model.file) }
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) {
            return found
        }
        throw ElucidateError(.invalidArgument,
                             "the built-in model '\(name)' is not installed (looked in \(candidates.map(\.path).joined(separator: ", ")))")
    }

    /// Loads a built-in model with its labels and preset.
    public static func load(_ name: String = defaultName) throws(ElucidateError) -> Classifier {
        try Classifier.load(from: url(for: name))
    }
}
