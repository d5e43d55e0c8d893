import Elucidate
import Foundation
import TestSupport
import XCTest

/// Issue 11, items 2 and 3: `--samples 1000000000` (or `--nt-samples`) aborted with SIGABRT under
/// a 4 GB memory limit, or ate the machine's memory. Now the streaming methods run in bounded
/// memory (the count only makes them long), and KernelSHAP and LIME refuse a count whose
/// surrogate fit would not fit, before any work, with how much it would need and how many fit.
final class SampleCountCommandTests: TemporaryFolderTestCase {
    let sneaker = packageRootURL.appendingPathComponent("Resources/images/sneaker.png").path

    func testKernelSHAPAndLIMERefuseABillionSamplesBeforeAnyWork() throws {
        for method in ["kernel-shap", "lime"] {
            let name = method == "lime" ? "LIME" : "Kernel SHAP"
            let arguments = ["explain", method, sneaker, "--grid", "4", "--samples", "1000000000", "--quiet",
                             "--attributions", path("out.npy")]
            // The default budget: half of what this process may use, whatever the machine.
            var result = try runElucidate(arguments)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("elucidate: \(name) with 1000000000 samples of 16 features needs about "
                                                  + "298.0 GiB for its surrogate fit (every sample × feature at once), "
                                                  + "more than the memory budget of "), result.stderr)
            XCTAssertTrue(result.stderr.contains("ELUCIDATE_MEMORY_BUDGET changes it); at most "), result.stderr)
            // A budget from the environment, named in the message.
            result = try runElucidate(arguments, environment: ["ELUCIDATE_MEMORY_BUDGET": "64M"])
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertEqual(result.stderr, "elucidate: \(name) with 1000000000 samples of 16 features needs about 298.0 GiB "
                           + "for its surrogate fit (every sample × feature at once), more than the memory budget of "
                           + "64.0 MiB (ELUCIDATE_MEMORY_BUDGET); at most 206400 samples fit\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.npy")))
        }
        let bad = try runElucidate(["explain", "lime", sneaker, "--grid", "4", "--quiet", "--attributions", path("out.npy")],
                                   environment: ["ELUCIDATE_MEMORY_BUDGET": "lots"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr, "elucidate: ELUCIDATE_MEMORY_BUDGET='lots' is not a size such as 8G, 512M or 1000000 (bytes)\n")
    }

    /// Under `ulimit -v` 4 GB, as filed: each run is still working after a few seconds, in
    /// bounded memory, instead of aborting. A billion samples would take years; the test stops them.
    func testStreamingMethodsRunABillionSamplesInBoundedMemory() throws {
        let runs = [
            ["explain", "gradient-shap", "--samples", "1000000000"],
            ["explain", "integrated-gradients", "--noise-tunnel", "smoothgrad", "--nt-samples", "1000000000"],
            ["explain", "shapley-value-sampling", "--grid", "4", "--samples", "1000000000"],
        ]
        let binary = productsDirectory.appendingPathComponent("elucidate").path
        var processes: [(Process, Pipe, String)] = []
        for (index, arguments) in runs.enumerated() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            let command = ([binary] + arguments + [sneaker, "--quiet", "--attributions", path("out\(index).npy")])
                .map { "'\($0)'" }.joined(separator: " ")
            process.arguments = ["-c", "ulimit -v 4000000 && exec \(command)"]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            processes.append((process, errors, arguments[1]))
        }
        Thread.sleep(forTimeInterval: 5)
        for (process, errors, name) in processes {
            let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
                .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
            let running = process.isRunning
            if running { process.terminate() }
            process.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertTrue(running, "\(name) stopped (status \(process.terminationStatus)): \(stderr)")
            XCTAssertGreaterThan(peak, 0, "\(name): no /proc status")
            XCTAssertLessThan(peak, 1 << 20, "\(name): peak resident memory \(peak) kB")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "no output is written")
    }
}
