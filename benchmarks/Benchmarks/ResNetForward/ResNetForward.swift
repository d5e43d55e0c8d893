// Whole-network inference: torchvision ResNets at 224×224 with deterministic weights.
//
//   swift package --scratch-path .build benchmark --target ResNetForward
//
// One iteration is one `ResNet.logits(_:)` call on the whole batch. Building the network
// (weights generated, batch norms folded) and the input happen in `setup`, outside the
// measured region. Threads: ELUCIDATE_BENCH_THREADS, else every core.

import Benchmark
import BenchmarkSupport
import Dispatch
import Elucidate
import Foundation
import TestSupport

private enum Custom {
    /// Images per second (batch size × forward passes per second).
    static let imagesPerSecond = BenchmarkMetric.custom("images/s", polarity: .prefersLarger, useScalingFactor: false)
}

let benchmarks: @Sendable () -> Void = {
    configureBenchmarkThreads()

    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, .mallocBytesCount, .peakMemoryResident,
                  .memoryLeakedBytes, Custom.imagesPerSecond],
        timeUnits: .milliseconds,
        warmupIterations: 2,
        maxDuration: .seconds(10),
        maxIterations: 30)

    let cases: [(arch: String, batch: Int)] = [("resnet34", 1), ("resnet34", 8), ("resnet18", 1), ("resnet50", 1)]
    for (arch, batch) in cases {
        Benchmark("\(arch) 224x224 batch \(batch)", configuration: configuration) { (benchmark: Benchmark, state: (ResNet, Tensor)) throws in
            let (network, input) = state
            for _ in benchmark.scaledIterations {
                let start = DispatchTime.now().uptimeNanoseconds
                let logits = try network.logits(input)
                let elapsed = DispatchTime.now().uptimeNanoseconds - start
                blackHole(logits)
                benchmark.measurement(Custom.imagesPerSecond,
                                      Int((Double(batch) * 1e9 / Double(max(elapsed, 1))).rounded()))
            }
        } setup: {
            guard let architecture = ResNetArchitecture.named(arch) else {
                throw ElucidateError(.invalidArgument, "unknown architecture \(arch)")
            }
            let network = try ResNet(stateDict: DeterministicWeights.stateDict(architecture, classes: 1000))
            return (network, DeterministicWeights.input(shape: [batch, 3, 224, 224]))
        }
    }
}
