import Elucidate
import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Every `elucidate explain` method's progress bar: drawn on a terminal (label, done/total,
/// percent, rate, time left), never on a pipe, and turned off by `--quiet`.
final class ExplainProgressCommandTests: TemporaryFolderTestCase {
    var sneaker: String { packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path }

    /// Every method, with settings small enough to run in a moment on the built-in model.
    private func methods() throws -> [(name: String, options: [String])] {
        let baselines = path("baselines.npy")
        try NPY.write(Tensor(zeros: [2, 3, 28, 28]), to: URL(fileURLWithPath: baselines))
        return [
            ("saliency", []), ("input-x-gradient", []), ("integrated-gradients", ["--steps", "4"]),
            ("gradient-shap", ["--samples", "2", "--seed", "1"]), ("deeplift", []), ("deeplift-shap", ["--baselines", baselines]),
            ("guided-backprop", []), ("deconvolution", []), ("occlusion", ["--window", "3,14,14", "--stride", "3,14,14"]),
            ("feature-ablation", ["--grid", "2"]), ("shapley-value-sampling", ["--grid", "2", "--samples", "2", "--seed", "1"]),
            ("kernel-shap", ["--grid", "2", "--samples", "2", "--seed", "1"]),
            ("lime", ["--grid", "2", "--samples", "2", "--seed", "1"]),
            ("integrated-gradients", ["--steps", "4", "--noise-tunnel", "smoothgrad-sq", "--nt-samples", "2", "--seed", "1"]),
        ]
    }

    func testEveryMethodAcceptsQuietAndDrawsNothingOnAPipe() throws {
        for (method, options) in try methods() {
            for quiet in [["--quiet"], []] {
                let output = path("\(method).npy")
                let result = try runElucidate(["explain", method, sneaker, "--attributions", output] + options + quiet)
                XCTAssertEqual(result.status, 0, "\(method) \(quiet): \(result.stderr)")
                XCTAssertEqual(result.stderr, "", "\(method) \(quiet): no progress text when stderr is not a terminal")
                XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: output)).shape, [1, 3, 28, 28], method)
            }
        }
    }

    func testQuietIsOneOptionInEveryMethodsHelp() throws {
        for (method, _) in try methods() {
            let help = try runElucidate(["explain", method, "--help"])
            XCTAssertEqual(help.status, 0, "\(method): \(help.stderr)")
            XCTAssertEqual(help.stdout.components(separatedBy: "--quiet").count - 1, 1, "\(method): one --quiet option")
            XCTAssertTrue(help.stdout.contains("No progress bar on stderr."), method)
        }
    }

    func testEveryMethodDrawsTheBarOnATerminalAndQuietSilencesIt() throws {
        for (method, options) in try methods() {
            let arguments = ["explain", method, sneaker, "--attributions", path("\(method).npy")] + options
            let drawn = try runOnTerminal(arguments)
            XCTAssertEqual(drawn.status, 0, "\(method): \(drawn.stderr)")
            let lines = drawn.stderr.components(separatedBy: "\r").filter { !$0.isEmpty }
            // The last line is the erasure of the bar; the one before it the finished bar.
            XCTAssertEqual(lines.last, "\u{1B}[K", "\(method): the bar is erased before the report")
            let label = options.contains("--noise-tunnel") ? "\(method) (smoothgrad-sq)" : method
            let unit = ["occlusion", "feature-ablation", "shapley-value-sampling", "kernel-shap", "lime"].contains(method)
                ? "evals" : "passes"
            let finished = try XCTUnwrap(lines.dropLast().last, method)
            let pattern = "^\(NSRegularExpression.escapedPattern(for: label)) \\[#{30}\\] (\\d+)/(\\d+) 100% "
                + "[0-9.]+ \(unit)/s 0:00 left\u{1B}\\[K$"
            let match = try XCTUnwrap(try NSRegularExpression(pattern: pattern)
                .firstMatch(in: finished, range: NSRange(finished.startIndex..., in: finished)), "\(method): \(finished.debugDescription)")
            let numbers = (1...2).map { Int((finished as NSString).substring(with: match.range(at: $0)))! }
            XCTAssertEqual(numbers[0], numbers[1], "\(method): done == total")
            XCTAssertTrue(lines.first!.hasPrefix("\(label) [\(String(repeating: "-", count: 30))] "), "\(method): \(lines.first!)")
            XCTAssertTrue(lines.first!.contains(" 0% - \(unit)/s -:-- left"), "\(method): \(lines.first!)")

            let quiet = try runOnTerminal(arguments + ["--quiet"])
            XCTAssertEqual(quiet.status, 0, "\(method): \(quiet.stderr)")
            XCTAssertEqual(quiet.stderr, "", "\(method): --quiet draws nothing on a terminal")
        }
    }

    func testTotalsOfTheRunCoverEveryImageAndNoisyCopy() throws {
        // Two images (two batches): IG with 10 steps, 4 points per pass, is 3 passes each; in a
        // noise tunnel of 3 copies, batches of 2 and 1, ⌈20 / 4⌉ + ⌈10 / 4⌉ = 8 passes each.
        let bag = packageRootURL.appendingPathComponent("Resources/images/bag.png").path
        let plain = try runOnTerminal(["explain", "integrated-gradients", sneaker, bag, "--attributions", path("a.npy"),
                                       "--steps", "10", "--internal-batch-size", "4"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stderr.contains(" 6/6 100% "), plain.stderr.debugDescription)
        let tunnel = try runOnTerminal(["explain", "integrated-gradients", sneaker, bag, "--attributions", path("b.npy"),
                                        "--steps", "10", "--internal-batch-size", "4", "--noise-tunnel", "vargrad",
                                        "--nt-samples", "3", "--nt-batch-size", "2", "--seed", "1"])
        XCTAssertEqual(tunnel.status, 0, tunnel.stderr)
        XCTAssertTrue(tunnel.stderr.contains("integrated-gradients (vargrad) ["), tunnel.stderr.debugDescription)
        XCTAssertTrue(tunnel.stderr.contains(" 16/16 100% "), tunnel.stderr.debugDescription)
    }

    /// Runs `elucidate` with stderr on a pseudo-terminal 120 columns wide (stdout on a pipe) and
    /// returns what it wrote there.
    private func runOnTerminal(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        // posix_openpt and friends are libc's but not in the Glibc module (they need _XOPEN_SOURCE).
        let libc = dlopen(nil, RTLD_NOW)
        typealias OpenPT = @convention(c) (Int32) -> Int32
        typealias Grant = @convention(c) (Int32) -> Int32
        typealias Name = @convention(c) (Int32) -> UnsafeMutablePointer<CChar>?
        guard let openSymbol = dlsym(libc, "posix_openpt"), let grantSymbol = dlsym(libc, "grantpt"),
              let unlockSymbol = dlsym(libc, "unlockpt"), let nameSymbol = dlsym(libc, "ptsname") else {
            throw XCTSkip("no pseudo-terminal functions here")
        }
        let master = unsafeBitCast(openSymbol, to: OpenPT.self)(O_RDWR | O_NOCTTY)
        guard master >= 0 else { throw XCTSkip("no pseudo-terminal here") }
        defer { close(master) }
        guard unsafeBitCast(grantSymbol, to: Grant.self)(master) == 0, unsafeBitCast(unlockSymbol, to: Grant.self)(master) == 0,
              let name = unsafeBitCast(nameSymbol, to: Name.self)(master) else {
            throw XCTSkip("no pseudo-terminal here")
        }
        let slave = open(name, O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw XCTSkip("cannot open \(String(cString: name))") }
        var size = winsize(ws_row: 24, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(slave, UInt(TIOCSWINSZ), &size)
        // Keep the terminal from rewriting what is drawn (no \n → \r\n).
        var settings = termios()
        if tcgetattr(slave, &settings) == 0 {
            cfmakeraw(&settings)
            _ = tcsetattr(slave, TCSANOW, &settings)
        }

        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("elucidate")
        process.arguments = arguments
        let out = Pipe()
        let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        process.standardOutput = out
        process.standardError = terminal
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            close(slave)
            throw error
        }
        close(slave)  // the child holds its own copy; reading ends when it exits

        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(master, &buffer, buffer.count)
                if count > 0 { errData.append(contentsOf: buffer[0..<count]) } else if count < 0, errno == EINTR { continue } else { break }
            }
            group.leave()
        }
        process.waitUntilExit()
        group.wait()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}
