import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, items 5 and 7: text from files reaches the terminal escaped, and misleading
/// messages say what is wrong.
///
/// - Labels (a `--labels` file, a safetensors file's metadata), file names, metadata and
///   tensor names holding ANSI/OSC sequences once set the terminal's title and cleared the
///   screen; now every control character is shown as `\xNN`, and JSON keeps the text exact
///   through its own escaping.
/// - `--target -1` said "Missing value for '--target <target>'"; `/dev/zero` or a FIFO as an
///   image said "You don't have permission" (a FIFO could hang); a pickle said "header
///   length … is absurd; not a safetensors file".
final class MessagesCommandTests: TemporaryFolderTestCase {
    let image = packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path
    /// A small deterministic ResNet with 3 classes, and a (1, 3, 32, 32) input for it.
    var model: String!
    var x: String!

    /// Two sequences that act on a terminal: set the window title, clear the screen.
    let title = "\u{1B}]0;pwned\u{07}"
    let clear = "\u{1B}[2J"
    /// C1 CSI: a one-byte ESC [ on some terminals.
    let csi = "\u{9B}2J"

    override func setUpWithError() throws {
        try super.setUpWithError()
        model = try writeModel("m.safetensors")
        x = path("x.npy")
        try NPY.write(DeterministicWeights.input(shape: [1, 3, 32, 32]), to: URL(fileURLWithPath: x))
    }

    private func writeModel(_ name: String, metadata: [String: String] = [:], extra: [String: Tensor] = [:]) throws -> String {
        let architecture = ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1])
        let tensors = DeterministicWeights.stateDict(architecture, classes: 3).tensors.merging(extra) { $1 }
        try SafetensorsWriter.write(tensors, metadata: metadata, to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    private func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    /// Fails if `bytes` hold a character a terminal acts on: ESC, BEL, or C1 CSI (UTF-8 C2 9B).
    private func assertNoTerminalControls(_ bytes: Data, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(bytes.contains(0x1B), "\(what) holds ESC: \(String(decoding: bytes, as: UTF8.self))", file: file, line: line)
        XCTAssertFalse(bytes.contains(0x07), "\(what) holds BEL", file: file, line: line)
        XCTAssertNil(bytes.firstRange(of: Data([0xC2, 0x9B])), "\(what) holds C1 CSI", file: file, line: line)
    }

    // MARK: Item 7: negative numbers

    func testNegativeValuesGetTheOptionsOwnMessage() throws {
        let attr = path("attr.npy")
        let explain = ["explain", "saliency", image, "--attributions", attr]
        let cases: [([String], String)] = [
            (explain + ["--target", "-1"], "--target must be a class index ≥ 0, a label or 'predicted'"),
            (explain + ["--target=-1"], "--target must be a class index ≥ 0, a label or 'predicted'"),
            (["explain", "integrated-gradients", image, "--attributions", attr, "--steps", "-5"], "--steps must be at least"),
            (["predict", image, "--top-k", "-1"], "--top-k must be at least 1"),
            (["predict", image, "--threads", "-2"], "--threads must be at least 1"),
            (explain + ["--noise-tunnel", "smoothgrad", "--nt-samples", "-1"], "--nt-samples must be at least 1"),
            (explain + ["--nt-stdev", "-0.5"], "--nt-stdev must be a number ≥ 0"),
            (["explain", "occlusion", image, "--attributions", attr, "--window", "-1,5,5"], "--window must be three positive integers"),
            (["visualize", attr, "--out", path("v.png"), "--index", "-1"], "--index must be at least 0"),
            (explain + ["--seed", "-1"], "The value '-1' is invalid for '--seed <seed>'"),
        ]
        for (arguments, expected) in cases {
            let result = try runBounded(arguments)
            let command = arguments.joined(separator: " ")
            assertOneLineFailure(result, mentioning: expected, command)
            XCTAssertFalse(result.stderr.contains("Missing value"), "\(command): \(result.stderr)")
            XCTAssertEqual(result.status, 64, "\(command): a usage error")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: attr))
        // A negative number that is a valid value is taken as one.
        let baseline = try runBounded(["explain", "integrated-gradients", image, "--attributions", attr, "--baseline", "-0.5",
                                       "--steps", "4", "--quiet"])
        XCTAssertEqual(baseline.status, 0, baseline.stderr)
    }

    // MARK: Item 7: inputs that are not regular files

    func testInputsThatAreNotRegularFiles() throws {
        let fifo = path("in.pipe")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let attr = path("attr.npy")
        XCTAssertEqual(try runBounded(["explain", "saliency", image, "--attributions", attr, "--quiet"]).status, 0)
        var cases: [([String], String)] = [
            (["predict", fifo], "\(fifo): is a FIFO (named pipe), not a regular file; expected a JPEG or PNG image"),
            (["predict", image, "--model", fifo], "\(fifo): is a FIFO (named pipe), not a regular file; expected a .safetensors or .pth weights file"),
            (["predict", image, "--labels", fifo], "\(fifo): is a FIFO (named pipe), not a regular file; expected a text file of labels"),
            (["predict", "--input-tensor", fifo], "\(fifo): is a FIFO (named pipe), not a regular file; expected a .npy file"),
            (["explain", "integrated-gradients", image, "--attributions", path("o.npy"), "--baseline", fifo], "not a regular file"),
            (["explain", "feature-ablation", image, "--attributions", path("o.npy"), "--feature-mask", fifo], "not a regular file"),
            (["visualize", fifo, "--out", path("v.png")], "not a regular file"),
            (["visualize", attr, "--image", fifo, "--out", path("v.png")], "not a regular file; expected a JPEG or PNG image"),
            (["predict", folder.path], "is a folder, not a file"),
        ]
        if FileManager.default.fileExists(atPath: "/dev/zero") {
            cases.append((["predict", "/dev/zero"], "/dev/zero: is a character device, not a regular file; expected a JPEG or PNG image"))
            cases.append((["predict", image, "--model", "/dev/zero"], "/dev/zero: is a character device, not a regular file"))
        }
        for (arguments, expected) in cases {
            let result = try runBounded(arguments, timeout: 60)
            assertOneLineFailure(result, mentioning: expected, arguments.joined(separator: " "))
            XCTAssertFalse(result.stderr.contains("permission"), result.stderr)
        }
        try FileManager.default.createSymbolicLink(atPath: path("dangling.png"), withDestinationPath: "missing.png")
        assertOneLineFailure(try runBounded(["predict", path("dangling.png")]),
                             mentioning: "is a symbolic link to a file that does not exist", "dangling link")
    }

    // MARK: Item 7: pickles

    func testPicklesAreNamedWithReSaveAdvice() throws {
        // pickle.dump({'fc.weight': 1}, f) (protocol 4)
        let plain = try write("weights.pkl", [0x80, 0x04, 0x95, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x7D, 0x94, 0x8C, 0x09]
                                             + Array("fc.weight".utf8) + [0x94, 0x4B, 0x01, 0x73, 0x2E])
        // torch.save(..., _use_new_zipfile_serialization=False): a pickled magic number first.
        let legacy = try write("legacy.pth", [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E,
                                              0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E])
        for (file, expected) in [(plain, "is a plain Python pickle (as pickle.dump writes), not a PyTorch zip checkpoint; re-save it with a current PyTorch: torch.save(pickle.load("),
                                 (legacy, "is a legacy PyTorch checkpoint (saved before PyTorch 1.6 or with _use_new_zipfile_serialization=False), not a zip archive; re-save it")] {
            let result = try runBounded(["predict", image, "--model", file])
            assertOneLineFailure(result, mentioning: "\(file): \(expected)", "predict --model \(file)")
            XCTAssertFalse(result.stderr.contains("absurd"), result.stderr)
        }
    }

    // MARK: Item 5: labels and names are escaped on the terminal

    func testLabelsFileIsShownEscaped() throws {
        let labels = path("labels.txt")
        try Data("\(title)\n\(clear)cat\n\(csi)dog\n".utf8).write(to: URL(fileURLWithPath: labels))
        let predict = try runBounded(["predict", "--model", model, "--labels", labels, "--input-tensor", x, "--top-k", "3"])
        XCTAssertEqual(predict.status, 0, predict.stderr)
        assertNoTerminalControls(predict.stdout, "predict's table")
        for shown in ["\\x1b]0;pwned\\x07 (0)", "\\x1b[2Jcat (1)", "\\x9b2Jdog (2)"] {
            XCTAssertTrue(predict.stdoutText.contains(shown), "no \(shown) in \(predict.stdoutText)")
        }
        // JSON keeps the labels exactly, in JSON's own escaping.
        let json = try runBounded(["predict", "--model", model, "--labels", labels, "--input-tensor", x, "--top-k", "3", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        assertNoTerminalControls(json.stdout, "predict's JSON")
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        let top = try XCTUnwrap(((report["inputs"] as? [[String: Any]])?.first?["top"]) as? [[String: Any]])
        XCTAssertEqual(Set(top.compactMap { $0["label"] as? String }), [title, "\(clear)cat", "\(csi)dog"])
        // explain's lines too.
        let explain = try runBounded(["explain", "saliency", "--model", model, "--labels", labels, "--input-tensor", x,
                                      "--attributions", path("a.npy"), "--target", "0"])
        XCTAssertEqual(explain.status, 0, explain.stderr)
        assertNoTerminalControls(explain.stdout, "explain's report")
        XCTAssertTrue(explain.stdoutText.contains("for class 0 (\\x1b]0;pwned\\x07)"), explain.stdoutText)
    }

    func testMetadataLabelsAreShownEscaped() throws {
        let labels = String(decoding: try JSONSerialization.data(withJSONObject: [title, clear, csi]), as: UTF8.self)
        let withLabels = try writeModel("labelled.safetensors", metadata: ["labels": labels])
        let result = try runBounded(["predict", "--model", withLabels, "--input-tensor", x, "--top-k", "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        assertNoTerminalControls(result.stdout, "predict's table")
        XCTAssertTrue(result.stdoutText.contains("\\x1b]0;pwned\\x07"), result.stdoutText)
    }

    func testTextFromFilesInMessagesIsEscaped() throws {
        // A file name (the image, and the input-tensor name in predict's table).
        let badImage = try write("photo\(clear).png", Array("not an image at all".utf8))
        let named = try runBounded(["predict", badImage])
        assertOneLineFailure(named, mentioning: "photo\\x1b[2J.png: not a JPEG or PNG image", "image with ESC in its name")
        assertNoTerminalControls(Data(named.stderr.utf8), "stderr")
        let renamed = path("x\(title).npy")
        try FileManager.default.copyItem(atPath: x, toPath: renamed)
        let table = try runBounded(["predict", "--model", model, "--input-tensor", renamed])
        XCTAssertEqual(table.status, 0, table.stderr)
        assertNoTerminalControls(table.stdout, "predict's table")
        // Metadata values and tensor names.
        let cases: [(String, String)] = [
            (try writeModel("preset.safetensors", metadata: ["preset": clear]), "unknown preprocessing preset '\\x1b[2J'"),
            (try writeModel("arch.safetensors", metadata: ["arch": title]), "unknown architecture '\\x1b]0;pwned\\x07'"),
            (try writeModel("stem.safetensors", metadata: ["stem": csi]), "unknown stem '\\x9b2J'"),
            (try writeModel("extra.safetensors", extra: [title: Tensor(shape: [1], values: [0])]), "\\x1b]0;pwned\\x07"),
        ]
        for (file, expected) in cases {
            let result = try runBounded(["predict", "--model", file, "--input-tensor", x])
            assertOneLineFailure(result, mentioning: expected, file)
            assertNoTerminalControls(Data(result.stderr.utf8), "stderr of \(file)")
        }
    }
}
