import Elucidate
import Foundation
import TestSupport
import XCTest

/// The C API as a C program sees it: examples/c/check.c and examples/c/explain.c compiled
/// with `cc` against Sources/CAPI/include/elucidate.h and the built libElucidateC.so (the
/// library tools/install.sh installs as libelucidate.so), then run.
final class CAPITests: TemporaryFolderTestCase {
    private var library: URL { productsDirectory.appendingPathComponent("libElucidateC.so") }

    /// Compiles `examples/c/NAME.c` into the test's folder; the program's path.
    private func compile(_ name: String) throws -> String {
        guard FileManager.default.fileExists(atPath: library.path) else {
            XCTFail("\(library.path) is missing: build with `swift build --build-tests` (it builds every product)")
            throw XCTSkip("no libElucidateC.so")
        }
        let output = path(name)
        let result = try run("/usr/bin/env", ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1",
                                              packageRootURL.appendingPathComponent("examples/c/\(name).c").path,
                                              "-I", packageRootURL.appendingPathComponent("Sources/CAPI/include").path,
                                              "-L", productsDirectory.path, "-lElucidateC",
                                              "-Wl,-rpath," + productsDirectory.path, "-pthread", "-lm", "-o", output])
        XCTAssertEqual(result.status, 0, "cc failed: \(result.stderr)")
        return output
    }

    private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        group.wait()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// check.c on a ResNet34 .safetensors: load, predict, Integrated Gradients, Occlusion,
    /// every kind of bad input (an error status and a message each, no crash), and saliency
    /// from 4 threads sharing the model equal bit for bit to a sequential run.
    func testCheckProgramOnResNet34() throws {
        let check = try compile("check")
        let stateDict = DeterministicWeights.stateDict(ResNetArchitecture.named("resnet34")!, classes: 10)
        try SafetensorsWriter.write(stateDict.tensors, metadata: [:], to: URL(fileURLWithPath: path("r34.safetensors")))
        let result = try run(check, [path("r34.safetensors"), "64"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains(", 0 failed"), result.stdout)
        XCTAssertFalse(result.stdout.contains("FAILED"), result.stdout)
    }

    /// check.c on the built-in model, found by name from the library.
    func testCheckProgramOnBuiltinModel() throws {
        let check = try compile("check")
        let result = try run(check, [BuiltinModels.defaultName, "28"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    }

    /// explain.c writes the same .npy and PNG bytes as `elucidate explain`.
    func testExplainProgramMatchesCommandLineByteForByte() throws {
        let explain = try compile("explain")
        let image = fixtureURL("images/small.png").path
        let c = try run(explain, [BuiltinModels.defaultName, image, "saliency", path("c.npy"), path("c.png")])
        XCTAssertEqual(c.status, 0, c.stderr)
        let cli = try runElucidate(["explain", "saliency", "--model", BuiltinModels.defaultName, image,
                                    "--attributions", path("cli.npy"), "--visualize", path("cli.png"), "--quiet"])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        for (mine, theirs) in [("c.npy", "cli.npy"), ("c.png", "cli.png")] {
            let a = try Data(contentsOf: URL(fileURLWithPath: path(mine)))
            let b = try Data(contentsOf: URL(fileURLWithPath: path(theirs)))
            XCTAssertFalse(a.isEmpty)
            XCTAssertEqual(a, b, "\(mine) differs from the command line's \(theirs)")
        }
    }

    /// An error's message is the command line's line for the same error, without "elucidate: ".
    func testErrorMessageIsTheCommandLinesLine() throws {
        let explain = try compile("explain")
        let missing = path("missing.png")
        let c = try run(explain, [BuiltinModels.defaultName, missing, "saliency", path("c.npy"), path("c.png")])
        XCTAssertNotEqual(c.status, 0)
        let cli = try runElucidate(["explain", "saliency", missing, "--attributions", path("cli.npy"), "--quiet"])
        XCTAssertNotEqual(cli.status, 0)
        let line = cli.stderr.trimmingCharacters(in: .newlines)
        XCTAssertTrue(line.hasPrefix("elucidate: "), line)
        XCTAssertEqual(c.stderr.trimmingCharacters(in: .newlines), "explain: " + line.dropFirst("elucidate: ".count))
    }
}
