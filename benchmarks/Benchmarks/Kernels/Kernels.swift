// Elucidate's main kernels at the shapes a ResNet runs them, through Engine's layer types.
//
//   swift package --scratch-path .build benchmark --target Kernels
//   swift package --scratch-path .build benchmark --target Kernels --filter 'Conv2d'
//
// Convolutions and Linear go through OpenBLAS (its own SIMD kernels, chosen by the CPU), so
// they run once, at the detected instruction set. The element-wise kernels (batch norm,
// pooling, residual add + ReLU, softmax, Winograd tile transforms) run once per instruction
// set the CPU has, forced with `ek_set_isa`, so the SIMD speed-up over the scalar reference
// is visible side by side.
// Every tensor is made in `setup`, outside the measured region.

import Benchmark
import BenchmarkSupport
import CKernels
import Dispatch
import Elucidate
import Foundation
import TestSupport

private enum Custom {
    /// Floating-point operations per second of a convolution or linear layer (2 per multiply-add).
    static let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
    /// Bytes read and written per second by an element-wise kernel.
    static let bandwidth = BenchmarkMetric.custom("GB/s (x100)", polarity: .prefersLarger, useScalingFactor: false)
}

/// The instruction sets this CPU has, scalar first.
private var availableISAs: [ek_isa] {
    let detected = ek_isa_detected()
    return [EK_ISA_SCALAR, EK_ISA_AVX2, EK_ISA_AVX512].filter { $0.rawValue <= detected.rawValue }
}

private func isaName(_ isa: ek_isa) -> String { String(cString: ek_isa_name(isa)) }

@inline(__always)
private func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// A convolution as `ResNet` runs it: batch norm folded into a bias, ReLU fused when asked.
private func convolution(_ name: String, in c: Int, out k: Int, kernel: Int, stride: Int, padding: Int,
                         relu: Bool) -> Conv2d {
    let weight = DeterministicWeights.parameter(key: "\(name).weight", shape: [k, c, kernel, kernel])
    let bias = DeterministicWeights.parameter(key: "\(name).bias", shape: [k])
    var conv = Conv2d(weight: weight, bias: bias, stride: stride, padding: padding)
    conv.activation = relu ? .relu : .identity
    return conv
}

/// A 3×3, stride-1, padding-1 convolution's params for the Winograd kernels, one share, ReLU.
private func winogradParams(batch: Int, channels: Int, size: Int) -> ek_conv2d_params {
    ek_conv2d_params(n: Int64(batch), c: Int64(channels), h: Int64(size), w: Int64(size), k: Int64(channels), r: 3, s: 3,
                     stride_h: 1, stride_w: 1, pad_h: 1, pad_w: 1, dilation_h: 1, dilation_w: 1, activation: EK_ACT_RELU,
                     ith: 0, nth: 1, winograd_tile: 4)
}

private func batchNorm(channels c: Int) -> BatchNorm2d {
    var norm = BatchNorm2d(
        weight: DeterministicWeights.parameter(key: "bn.weight", shape: [c]),
        bias: DeterministicWeights.parameter(key: "bn.bias", shape: [c]),
        runningMean: DeterministicWeights.parameter(key: "bn.running_mean", shape: [c]),
        runningVar: DeterministicWeights.parameter(key: "bn.running_var", shape: [c]))
    norm.activation = .relu
    return norm
}

let benchmarks: @Sendable () -> Void = {
    configureBenchmarkThreads()
    let timeMetrics: [BenchmarkMetric] = [.wallClock, .cpuTotal, .throughput, .mallocCountTotal]
    let heavy = Benchmark.Configuration(
        metrics: timeMetrics + [Custom.gflops], timeUnits: .microseconds, warmupIterations: 3,
        maxDuration: .seconds(2), maxIterations: 200)
    let light = Benchmark.Configuration(
        metrics: timeMetrics + [Custom.bandwidth], timeUnits: .microseconds, warmupIterations: 10,
        maxDuration: .seconds(1), maxIterations: 2_000)

    // MARK: Convolutions (Winograd or im2col, OpenBLAS sgemm, fused bias/ReLU epilogue)
    //
    // 3×3 stride-1 cases run twice, through Winograd F(m×m, 3×3) (the default; the tile by plane and batch) and through
    // im2col; GFLOP/s counts the direct convolution's multiply-adds in both, so the figures
    // compare time. The batch-16 cases are occlusion's late layers (16 copies per pass).

    struct ConvCase {
        let name: String
        let input: [Int]
        let out: Int, kernel: Int, stride: Int, padding: Int, relu: Bool
        var winograd = true
    }
    let convCases = [
        ConvCase(name: "Conv2d 7x7/2 stem 3->64, 224x224", input: [1, 3, 224, 224],
                 out: 64, kernel: 7, stride: 2, padding: 3, relu: true),
        ConvCase(name: "Conv2d 3x3 64->64, 56x56", input: [1, 64, 56, 56],
                 out: 64, kernel: 3, stride: 1, padding: 1, relu: true),
        ConvCase(name: "Conv2d 3x3 256->256, 14x14", input: [1, 256, 14, 14],
                 out: 256, kernel: 3, stride: 1, padding: 1, relu: true),
        ConvCase(name: "Conv2d 3x3 512->512, 7x7", input: [1, 512, 7, 7],
                 out: 512, kernel: 3, stride: 1, padding: 1, relu: true),
        ConvCase(name: "Conv2d 3x3 64->64, 56x56, im2col", input: [1, 64, 56, 56],
                 out: 64, kernel: 3, stride: 1, padding: 1, relu: true, winograd: false),
        ConvCase(name: "Conv2d 3x3 256->256, 14x14, batch 16", input: [16, 256, 14, 14],
                 out: 256, kernel: 3, stride: 1, padding: 1, relu: true),
        ConvCase(name: "Conv2d 3x3 256->256, 14x14, batch 16, im2col", input: [16, 256, 14, 14],
                 out: 256, kernel: 3, stride: 1, padding: 1, relu: true, winograd: false),
        ConvCase(name: "Conv2d 3x3 512->512, 7x7, batch 16", input: [16, 512, 7, 7],
                 out: 512, kernel: 3, stride: 1, padding: 1, relu: true),
        ConvCase(name: "Conv2d 3x3 512->512, 7x7, batch 16, im2col", input: [16, 512, 7, 7],
                 out: 512, kernel: 3, stride: 1, padding: 1, relu: true, winograd: false),
        ConvCase(name: "Conv2d 1x1/2 downsample 64->128, 56x56", input: [1, 64, 56, 56],
                 out: 128, kernel: 1, stride: 2, padding: 0, relu: false),
        ConvCase(name: "Conv2d 1x1/2 downsample 256->512, 14x14", input: [1, 256, 14, 14],
                 out: 512, kernel: 1, stride: 2, padding: 0, relu: false),
    ]
    for item in convCases {
        Benchmark(item.name, configuration: heavy) { (benchmark: Benchmark, state: (Conv2d, Tensor, Double)) throws in
            let (conv, x, flops) = state
            Runtime.winogradEnabled = item.winograd
            defer { Runtime.winogradEnabled = true }
            for _ in benchmark.scaledIterations {
                let start = nanoseconds()
                let y = try conv(x)
                let elapsed = nanoseconds() - start
                blackHole(y)
                benchmark.measurement(Custom.gflops, Int((flops / Double(max(elapsed, 1))).rounded()))
            }
        } setup: {
            let conv = convolution(item.name, in: item.input[1], out: item.out, kernel: item.kernel,
                                   stride: item.stride, padding: item.padding, relu: item.relu)
            let x = DeterministicWeights.input(shape: item.input)
            _ = try conv(x)  // makes the Winograd weights outside the measured region
            let out = try conv.outputShape(for: item.input)
            let flops = 2.0 * Double(out.reduce(1, *)) * Double(item.input[1] * item.kernel * item.kernel)
            return (conv, x, flops)
        }
    }

    // MARK: Linear 512 -> 1000 (OpenBLAS)

    Benchmark("Linear 512->1000, batch 1", configuration: heavy) { (benchmark: Benchmark, state: (Linear, Tensor)) throws in
        let (fc, x) = state
        for _ in benchmark.scaledIterations {
            let start = nanoseconds()
            let y = try fc(x)
            let elapsed = nanoseconds() - start
            blackHole(y)
            benchmark.measurement(Custom.gflops, Int((2.0 * 512 * 1000 / Double(max(elapsed, 1))).rounded()))
        }
    } setup: {
        let fc = Linear(weight: DeterministicWeights.parameter(key: "fc.weight", shape: [1000, 512]),
                        bias: DeterministicWeights.parameter(key: "fc.bias", shape: [1000]))
        return (fc, DeterministicWeights.input(shape: [1, 512]))
    }

    // MARK: Element-wise kernels, once per instruction set

    struct ElementwiseCase {
        let name: String
        let input: [Int]
        /// Floats read + written per call, for the bandwidth metric.
        let traffic: Int
        let scaling: BenchmarkScalingFactor
        let make: @Sendable () -> (Tensor) throws(ElucidateError) -> Tensor
    }
    let elementwise = [
        ElementwiseCase(name: "BatchNorm2d+ReLU 64x112x112", input: [1, 64, 112, 112],
                        traffic: 2 * 64 * 112 * 112, scaling: .one) {
            let norm = batchNorm(channels: 64)
            return { x throws(ElucidateError) in try norm(x) }
        },
        ElementwiseCase(name: "MaxPool 3x3/2 64x112x112", input: [1, 64, 112, 112],
                        traffic: 64 * 112 * 112 + 64 * 56 * 56, scaling: .one) {
            let pool = Pool2d.maxPool(kernelSize: 3, stride: 2, padding: 1)
            return { x throws(ElucidateError) in try pool(x) }
        },
        ElementwiseCase(name: "Residual add+ReLU 64x56x56", input: [1, 64, 56, 56],
                        traffic: 3 * 64 * 56 * 56, scaling: .one) {
            let shortcut = DeterministicWeights.input(key: "shortcut", shape: [1, 64, 56, 56])
            return { x in x.adding(shortcut, activation: .relu) }
        },
        ElementwiseCase(name: "Residual add+ReLU 512x7x7", input: [1, 512, 7, 7],
                        traffic: 3 * 512 * 7 * 7, scaling: .kilo) {
            let shortcut = DeterministicWeights.input(key: "shortcut", shape: [1, 512, 7, 7])
            return { x in x.adding(shortcut, activation: .relu) }
        },
        ElementwiseCase(name: "AdaptiveAvgPool 512x7x7 -> 1x1", input: [1, 512, 7, 7],
                        traffic: 512 * 7 * 7 + 512, scaling: .kilo) {
            let pool = AdaptivePool2d(.average, outputSize: 1)
            return { x throws(ElucidateError) in try pool(x) }
        },
        // Winograd tile transforms of occlusion's 14×14 stage (16 copies, 256 channels, 16
        // tiles each), one thread, forced to F(4×4) (`winogradParams`): T = 256 tiles, V and M
        // are 36 × 256 × 256.
        ElementwiseCase(name: "Winograd input transform 16x256x14x14", input: [16, 256, 14, 14],
                        traffic: 16 * 256 * 14 * 14 + 36 * 256 * 256, scaling: .one) {
            // The output is this closure's own tensor, written in place (unique again once the
            // previous call's result is dropped).
            var v = Tensor(uninitialized: [36 * 256 * 256])
            return { x in
                var params = winogradParams(batch: 16, channels: 256, size: 14)
                x.withUnsafeBufferPointer { input in
                    v.withUnsafeMutableBufferPointer { out in
                        precondition(ek_winograd_input_f32(&params, input.baseAddress!, out.baseAddress!) == EK_OK)
                    }
                }
                return v
            }
        },
        ElementwiseCase(name: "Winograd output transform 16x256x14x14", input: [36 * 256 * 256],
                        traffic: 16 * 256 * 14 * 14 + 36 * 256 * 256, scaling: .one) {
            var y = Tensor(uninitialized: [16, 256, 14, 14])
            let bias = DeterministicWeights.parameter(key: "winograd.bias", shape: [256])
            return { m in
                var params = winogradParams(batch: 16, channels: 256, size: 14)
                m.withUnsafeBufferPointer { input in
                    bias.withUnsafeBufferPointer { b in
                        y.withUnsafeMutableBufferPointer { out in
                            precondition(ek_winograd_output_f32(&params, input.baseAddress!, b.baseAddress!,
                                                                out.baseAddress!) == EK_OK)
                        }
                    }
                }
                return y
            }
        },
        ElementwiseCase(name: "Softmax 1x1000", input: [1, 1000], traffic: 2 * 1000, scaling: .kilo) {
            { x in x.softmax() }
        },
        ElementwiseCase(name: "Softmax 8x1000", input: [8, 1000], traffic: 2 * 8000, scaling: .kilo) {
            { x in x.softmax() }
        },
    ]
    for item in elementwise {
        for isa in availableISAs {
            var configuration = light
            configuration.scalingFactor = item.scaling
            Benchmark("\(item.name) [\(isaName(isa))]", configuration: configuration) {
                (benchmark: Benchmark, state: ((Tensor) throws(ElucidateError) -> Tensor, Tensor)) throws in
                let (kernel, x) = state
                let start = nanoseconds()
                for _ in benchmark.scaledIterations {
                    blackHole(try kernel(x))
                }
                let elapsed = Double(max(nanoseconds() - start, 1))
                // GB/s × 100, so two decimals survive the integer metric.
                let bytes = Double(item.traffic * MemoryLayout<Float>.size * benchmark.scaledIterations.count)
                benchmark.measurement(Custom.bandwidth, Int((100 * bytes / elapsed).rounded()))
            } setup: {
                ek_set_isa(isa)
                return (item.make(), DeterministicWeights.input(shape: item.input))
            } teardown: {
                ek_set_isa(ek_isa_detected())
            }
        }
    }
}
