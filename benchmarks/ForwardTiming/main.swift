// forward-timing: times Elucidate's ResNet forward pass and prints one JSON line.
//
//   forward-timing --arch resnet34 --batch 1 --repeat 20 --warmup 3 --threads 2
//   {"engine":"elucidate","arch":"resnet34","batch":1,"median_ms":…,"min_ms":…,"runs":20,…}
//
// `--profile` instead times every layer of the same network, rebuilt here from Engine's
// public layer types (convolutions with their batch norms folded, as `ResNet` does), and
// prints a table of where the time goes; `--profile-gradient` does the same for the forward
// recorded in a Graph and the input-gradient backward. See benchmarks/README.md.

import CKernels
import Dispatch
import Elucidate
import Foundation
import TestSupport

struct Options {
    var arch = "resnet34"
    var batch = 1
    var size = 224
    var repeats = 20
    var warmup = 3
    var threads = Runtime.defaultThreadCount
    var classes = 1000
    var profile = false
    var profileGradient = false
    var samples = false

    static let usage = """
        usage: forward-timing [--arch resnet34] [--batch 1] [--size 224] [--repeat 20] [--warmup 3]
                              [--threads N] [--classes 1000] [--samples] [--profile] [--profile-gradient]

        Builds ARCH with deterministic weights, runs WARMUP untimed forward passes, then REPEAT
        timed ones, and prints one JSON line: median and minimum wall-clock milliseconds per
        forward pass of the whole batch. --samples adds every run's time ("samples_ms").
        --profile prints a per-layer timing table instead (median over REPEAT runs).
        --profile-gradient prints one for the gradient path: the forward recorded in a Graph
        and the input-gradient backward, per layer (see benchmarks/README.md).
        """

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var index = 0
        func value(_ flag: String) -> String {
            index += 1
            guard index < arguments.count else { fail("\(flag) needs a value") }
            return arguments[index]
        }
        func integer(_ flag: String, minimum: Int) -> Int {
            let text = value(flag)
            guard let number = Int(text), number >= minimum else {
                fail("\(flag) needs an integer ≥ \(minimum), got '\(text)'")
            }
            return number
        }
        while index < arguments.count {
            let flag = arguments[index]
            switch flag {
            case "--arch": options.arch = value(flag)
            case "--batch": options.batch = integer(flag, minimum: 1)
            case "--size": options.size = integer(flag, minimum: 1)
            case "--repeat", "--repeats": options.repeats = integer(flag, minimum: 1)
            case "--warmup": options.warmup = integer(flag, minimum: 0)
            case "--threads": options.threads = integer(flag, minimum: 1)
            case "--classes": options.classes = integer(flag, minimum: 1)
            case "--profile": options.profile = true
            case "--profile-gradient": options.profileGradient = true
            case "--samples": options.samples = true
            case "-h", "--help":
                print(usage)
                exit(0)
            default: fail("unknown option '\(flag)'")
            }
            index += 1
        }
        return options
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("forward-timing: \(message)\n\(Options.usage)\n".utf8))
    exit(2)
}

@inline(__always)
func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func milliseconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e6 }

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

func round3(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

/// Keeps the optimiser from discarding a result.
@inline(never)
func consume(_ tensor: Tensor) {
    withExtendedLifetime(tensor) {}
}

let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
let architecture: ResNetArchitecture
do { architecture = try ResNetArchitecture.parse(options.arch) } catch { fail(error.description) }

Runtime.setThreadCount(options.threads)
let stateDict = DeterministicWeights.stateDict(architecture, classes: options.classes)
let input = DeterministicWeights.input(shape: [options.batch, 3, options.size, options.size])

if options.profile || options.profileGradient {
    do {
        if options.profileGradient {
            try GradientProfiler(architecture: architecture, stateDict: stateDict, options: options).run(input)
        } else {
            try Profiler(architecture: architecture, stateDict: stateDict, options: options).run(input)
        }
    } catch {
        fail("\(error)")
    }
    exit(0)
}

let network: ResNet
do { network = try ResNet(stateDict: stateDict, architecture: architecture) } catch { fail(error.description) }

var times: [Double] = []
do {
    for _ in 0..<options.warmup { consume(try network.logits(input)) }
    times.reserveCapacity(options.repeats)
    for _ in 0..<options.repeats {
        let start = now()
        let logits = try network.logits(input)
        let end = now()
        consume(logits)
        times.append(milliseconds(end - start))
    }
} catch {
    fail(error.description)
}

func jsonString(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

var fields: [(String, String)] = [
    ("engine", jsonString("elucidate")),
    ("arch", jsonString(architecture.name)),
    ("batch", String(options.batch)),
    ("size", String(options.size)),
    ("threads", String(options.threads)),
    ("median_ms", String(round3(median(times)))),
    ("min_ms", String(round3(times.min()!))),
    ("runs", String(times.count)),
    ("isa", jsonString(Runtime.instructionSet.name)),
    ("blas_core", jsonString(Runtime.blas.coreName ?? "unknown")),
]
if options.samples {
    fields.append(("samples_ms", "[" + times.map { String(round3($0)) }.joined(separator: ",") + "]"))
}
print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
