// The gradient path that Saliency, Integrated Gradients and NoiseTunnel run: the forward
// recorded in a `Graph` and the backward for the input gradient only (weights frozen).
//
//   swift package --scratch-path .build benchmark --target GradientPath
//   swift package --scratch-path .build benchmark --target GradientPath --filter 'input gradient'
//
// - "ResNet34 … saliency pass, batch B": one `ResNet.logits(_:in:)` recorded in a fresh
//   graph and `gradients(of:seed:for:)` of each row's top logit with respect to the image,
//   the whole measured. Batch 16 is IG's default chunk (`IntegratedGradients.batchSize`).
// - "Conv2d 3x3 C->C, S x S, batch 16, input gradient [Winograd|im2col]": the input gradient
//   of one 3×3 stride-1 convolution (no activation, so no ReLU mask) at each ResNet34 stage's
//   shape. The public API reaches it only through a graph, so each iteration records the
//   convolution before an explicit `startMeasurement()` (so outside the measured region) and
//   measures `gradients(of:seed:for:)` alone.
//
// Threads: ELUCIDATE_BENCH_THREADS, else every core.

import Benchmark
import BenchmarkSupport
import Dispatch
import Elucidate
import Foundation
import TestSupport

private enum Custom {
    /// Images per second through the recorded forward and the input-gradient backward.
    static let imagesPerSecond = BenchmarkMetric.custom("images/s", polarity: .prefersLarger, useScalingFactor: false)
    /// The direct convolution's 2·N·K·OH·OW·C·R·S per second (the input gradient does as many
    /// multiply-adds as the forward), whichever algorithm ran, so the figures compare time.
    static let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
}

let benchmarks: @Sendable () -> Void = {
    configureBenchmarkThreads()

    // MARK: Whole saliency pass, ResNet34 224×224

    let pass = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, .mallocBytesCount, .peakMemoryResident,
                  Custom.imagesPerSecond],
        timeUnits: .milliseconds, warmupIterations: 2, maxDuration: .seconds(15), maxIterations: 30)
    for batch in [1, 16] {
        Benchmark("ResNet34 224x224 saliency pass, batch \(batch)", configuration: pass) {
            (benchmark: Benchmark, state: (ResNet, Tensor, Tensor)) throws in
            let (network, input, seed) = state
            for _ in benchmark.scaledIterations {
                let start = DispatchTime.now().uptimeNanoseconds
                let graph = Graph()
                let image = graph.input(input)
                let logits = try network.logits(image, in: graph)
                let gradient = try graph.gradients(of: logits, seed: seed, for: [image])[0]
                let elapsed = DispatchTime.now().uptimeNanoseconds - start
                blackHole(gradient)
                benchmark.measurement(Custom.imagesPerSecond,
                                      Int((Double(batch) * 1e9 / Double(max(elapsed, 1))).rounded()))
            }
        } setup: {
            let network = try ResNet(stateDict: DeterministicWeights.stateDict(try ResNetArchitecture.parse("resnet34"), classes: 1000))
            let input = DeterministicWeights.input(shape: [batch, 3, 224, 224])
            return (network, input, topClassSeed(try network.logits(input)))
        }
    }

    // MARK: Input gradient of one 3×3 convolution, ResNet34's four stage shapes, batch 16

    let single = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, Custom.gflops],
        timeUnits: .microseconds, warmupIterations: 3, maxDuration: .seconds(3), maxIterations: 200)
    for (channels, size) in [(64, 56), (128, 28), (256, 14), (512, 7)] {
        for winograd in [true, false] {
            let name = "Conv2d 3x3 \(channels)->\(channels), \(size)x\(size), batch 16, input gradient "
                + (winograd ? "[Winograd]" : "[im2col]")
            Benchmark(name, configuration: single) { (benchmark: Benchmark, state: (Conv2d, Tensor, Tensor)) throws in
                let (conv, input, seed) = state
                Runtime.winogradEnabled = winograd
                defer { Runtime.winogradEnabled = true }
                // Recording runs the forward too: the explicit start leaves it out of the measurement.
                let graph = Graph()
                let x = graph.input(input)
                let y = try graph.conv2d(x, conv)
                benchmark.startMeasurement()
                let start = DispatchTime.now().uptimeNanoseconds
                let gradient = try graph.gradients(of: y, seed: seed, for: [x])[0]
                let elapsed = DispatchTime.now().uptimeNanoseconds - start
                benchmark.stopMeasurement()
                blackHole(gradient)
                let flops = 2.0 * Double(seed.count) * Double(channels * 9)
                benchmark.measurement(Custom.gflops, Int((flops / Double(max(elapsed, 1))).rounded()))
            } setup: {
                let conv = Conv2d(
                    weight: DeterministicWeights.parameter(key: "\(name).weight", shape: [channels, channels, 3, 3]),
                    bias: DeterministicWeights.parameter(key: "\(name).bias", shape: [channels]), stride: 1, padding: 1)
                let input = DeterministicWeights.input(shape: [16, channels, size, size])
                let seed = DeterministicWeights.input(key: "seed", shape: [16, channels, size, size])
                return (conv, input, seed)
            }
        }
    }
}
