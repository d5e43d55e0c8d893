import CKernels
import Dispatch
import Elucidate
import Foundation

/// Per-layer timing of a ResNet forward pass (`forward-timing --profile`).
///
/// `ResNet` keeps its layers internal, so the profiler rebuilds the same network from the
/// public layer types exactly as `ResNet.init(stateDict:)` does (every batch norm folded
/// into its convolution, ReLU fused), runs it layer by layer and times each call. A second
/// pass splits every convolution into its kernels (im2col, sgemm, bias+ReLU epilogue)
/// called directly through CKernels, the way `Conv2d.callAsFunction` calls them.
struct Profiler {
    enum Kind: String, CaseIterable {
        case stem = "stem conv 7×7/2"
        case conv3x3 = "conv 3×3"
        case conv1x1 = "conv 1×1"
        case downsample = "downsample 1×1/2"
        case maxPool = "max pool 3×3/2"
        case add = "add + ReLU"
        case avgPool = "adaptive avg pool"
        case linear = "fc (Linear)"
    }

    struct Layer {
        let name: String
        let kind: Kind
        let stage: String
        var flops: Double = 0
        var conv: Conv2d?
        var input: Tensor?
        var times: [Double] = []
        var phases: (im2col: [Double], gemm: [Double], epilogue: [Double]) = ([], [], [])
    }

    struct Block {
        let prefix: String
        let convolutions: [Conv2d]
        let downsample: Conv2d?
    }

    let architecture: ResNetArchitecture
    let options: Options
    let stem: Conv2d
    let stemPool: Pool2d?
    let stages: [[Block]]
    let globalPool = AdaptivePool2d(.average, outputSize: 1)
    let fc: Linear

    init(architecture: ResNetArchitecture, stateDict: StateDict, options: Options) throws {
        self.architecture = architecture
        self.options = options
        func tensor(_ key: String) throws -> Tensor {
            guard let t = stateDict[key] else { throw ElucidateError(.invalidFormat, "missing '\(key)'") }
            return t
        }
        func batchNorm(_ prefix: String) throws -> BatchNorm2d {
            BatchNorm2d(weight: try tensor("\(prefix).weight"), bias: try tensor("\(prefix).bias"),
                        runningMean: try tensor("\(prefix).running_mean"), runningVar: try tensor("\(prefix).running_var"))
        }
        let conv1 = try tensor("conv1.weight")
        let imagenet = architecture.stem == .imagenet
        stem = Conv2d(weight: conv1, stride: imagenet ? 2 : 1, padding: conv1.shape[2] / 2)
            .folding(try batchNorm("bn1"), activation: .relu)
        stemPool = imagenet ? .maxPool(kernelSize: 3, stride: 2, padding: 1) : nil
        let convCount = architecture.block == .basic ? 2 : 3
        let strided = architecture.block == .basic ? 1 : 2
        var stages: [[Block]] = []
        for (stage, count) in architecture.blocksPerStage.enumerated() {
            var blocks: [Block] = []
            for index in 0..<count {
                let prefix = "layer\(stage + 1).\(index)"
                let stride = stage > 0 && index == 0 ? 2 : 1
                var convs: [Conv2d] = []
                for c in 1...convCount {
                    let weight = try tensor("\(prefix).conv\(c).weight")
                    convs.append(Conv2d(weight: weight, stride: c == strided ? stride : 1, padding: weight.shape[2] / 2)
                        .folding(try batchNorm("\(prefix).bn\(c)"), activation: c < convCount ? .relu : .identity))
                }
                var downsample: Conv2d?
                if let weight = stateDict["\(prefix).downsample.0.weight"] {
                    downsample = Conv2d(weight: weight, stride: stride).folding(try batchNorm("\(prefix).downsample.1"))
                }
                blocks.append(Block(prefix: prefix, convolutions: convs, downsample: downsample))
            }
            stages.append(blocks)
        }
        self.stages = stages
        fc = Linear(weight: try tensor("fc.weight"), bias: stateDict["fc.bias"])
    }

    /// Runs one forward pass, timing each layer into `layers` (created on the first pass).
    func forward(_ input: Tensor, into layers: inout [Layer], record: Bool) throws {
        var index = 0
        func step(_ name: String, _ kind: Kind, _ stage: String, conv: Conv2d? = nil, input: Tensor,
                  _ body: () throws -> Tensor) rethrows -> Tensor {
            let start = now()
            let output = try body()
            let elapsed = milliseconds(now() - start)
            if index == layers.count {
                var layer = Layer(name: name, kind: kind, stage: stage, conv: conv, input: conv == nil ? nil : input)
                if let conv {
                    let s = conv.kernelSize
                    layer.flops = 2.0 * Double(output.count) * Double(conv.inChannels * s.h * s.w)
                } else if kind == .linear {
                    layer.flops = 2.0 * Double(output.count) * Double(fc.inFeatures)
                }
                layers.append(layer)
            }
            if record { layers[index].times.append(elapsed) }
            index += 1
            return output
        }
        var x = try step("conv1+bn1+relu", .stem, "stem", conv: stem, input: input) { try stem(input) }
        if let stemPool { x = try step("maxpool", .maxPool, "stem", input: x) { [x] in try stemPool(x) } }
        for (s, stage) in stages.enumerated() {
            let stageName = "layer\(s + 1)"
            for block in stage {
                let blockInput = x
                var y = x
                for (c, conv) in block.convolutions.enumerated() {
                    let kind: Kind = conv.kernelSize.h == 1 ? .conv1x1 : .conv3x3
                    y = try step("\(block.prefix).conv\(c + 1)", kind, stageName, conv: conv, input: y) { [y] in try conv(y) }
                }
                var shortcut = blockInput
                if let downsample = block.downsample {
                    shortcut = try step("\(block.prefix).downsample", .downsample, stageName, conv: downsample,
                                        input: blockInput) { try downsample(blockInput) }
                }
                x = step("\(block.prefix).add+relu", .add, stageName, input: y) { [y, shortcut] in
                    y.adding(shortcut, activation: .relu)
                }
            }
        }
        let pooled = try step("avgpool", .avgPool, "head", input: x) { [x] in try globalPool(x).flattened() }
        consume(try step("fc", .linear, "head", input: pooled) { try fc(pooled) })
    }

    /// Times a convolution's kernels one by one, as `Conv2d.callAsFunction` calls them:
    /// one untimed call, then `repeats` timed ones. Scratch and output are allocated once,
    /// as the engine's scratch pool and a warm allocator give them.
    func phases(of conv: Conv2d, input: Tensor, into layer: inout Layer, repeats: Int) {
        let shape = input.shape
        var params = kernelParams(of: conv, inputShape: shape)
        var oh: Int64 = 0, ow: Int64 = 0
        guard ek_conv2d_output_size(&params, &oh, &ow) == EK_OK else { return }
        let k = conv.outChannels, plane = Int(oh * ow)
        let rows = conv.inChannels * conv.kernelSize.h * conv.kernelSize.w
        let scratchCount = Int(ek_conv2d_scratch_size(&params))
        // Aligned as the engine's tensor storage (64 bytes), allocated once.
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
                .bindMemory(to: Float.self, capacity: max(count, 1))
        }
        let scratch = buffer(scratchCount)
        let output = buffer(shape[0] * k * plane)
        defer {
            UnsafeMutableRawPointer(scratch).deallocate()
            UnsafeMutableRawPointer(output).deallocate()
        }
        let inImage = shape[1] * shape[2] * shape[3]
        let threads = Runtime.threadCount
        let act = params.activation
        // The layer's tensors are read through their scoped accessors for the whole run.
        func withBias(_ body: (UnsafePointer<Float>?) -> Void) {
            if let b = conv.bias { b.withUnsafeBufferPointer { body($0.baseAddress) } } else { body(nil) }
        }
        input.withUnsafeBufferPointer { inputBuffer in
        conv.weight.withUnsafeBufferPointer { weightBuffer in
        withBias { bias in
        let weight = weightBuffer.baseAddress!
        for run in 0...repeats {
        var im2col: UInt64 = 0, gemm: UInt64 = 0, epilogue: UInt64 = 0
        for image in 0..<shape[0] {
            let x = inputBuffer.baseAddress! + image * inImage
            let y = output + image * k * plane
            var t0 = now()
            let columns: UnsafePointer<Float>
            if scratchCount > 0 {
                let p = params
                let nth = max(1, min(threads, rows))
                let shared = Unchecked((x: x, columns: scratch))
                DispatchQueue.concurrentPerform(iterations: nth) { ith in
                    var share = p
                    share.ith = Int32(ith)
                    share.nth = Int32(nth)
                    _ = ek_im2col_f32(&share, shared.value.x, shared.value.columns)
                }
                columns = UnsafePointer(scratch)
            } else {
                columns = x
            }
            var t1 = now()
            im2col += t1 - t0
            _ = ek_gemm_f32(0, 0, Int64(k), Int64(plane), Int64(rows), 1, weight, Int64(rows), columns,
                            Int64(plane), 0, y, Int64(plane))
            t0 = now()
            gemm += t0 - t1
            biasActivation(channels: k, plane: plane, bias: bias, act, y, threads: threads)
            t1 = now()
            epilogue += t1 - t0
        }
        if run > 0 {
            layer.phases.im2col.append(milliseconds(im2col))
            layer.phases.gemm.append(milliseconds(gemm))
            layer.phases.epilogue.append(milliseconds(epilogue))
        }
        }
        }
        }
        }
    }

    func run(_ input: Tensor) throws {
        var layers: [Layer] = []
        var totals: [Double] = []
        for _ in 0..<max(1, options.warmup) { try forward(input, into: &layers, record: false) }
        for _ in 0..<options.repeats {
            let start = now()
            try forward(input, into: &layers, record: true)
            totals.append(milliseconds(now() - start))
        }
        for i in layers.indices {
            guard let conv = layers[i].conv, let x = layers[i].input else { continue }
            phases(of: conv, input: x, into: &layers[i], repeats: options.repeats)
        }
        report(layers, totals: totals)
    }

    func report(_ layers: [Layer], totals: [Double]) {
        let total = median(totals)
        let layerSum = layers.reduce(0) { $0 + median($1.times) }
        func fmt(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }
        func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
            let p = String(repeating: " ", count: max(0, n - s.count))
            return left ? s + p : p + s
        }
        print("Elucidate \(architecture.name), batch \(options.batch), \(options.size)×\(options.size), "
              + "\(Runtime.threadCount) threads, ISA \(Runtime.instructionSet), "
              + "OpenBLAS core \(Runtime.blas.coreName ?? "?"); medians of \(options.repeats) runs")
        print("whole forward (layer by layer): \(fmt(total)) ms; sum of layer medians \(fmt(layerSum)) ms")
        print("")
        print(pad("layer", 24, left: true) + pad("shape out", 16) + pad("ms", 9) + pad("%", 7) + pad("GFLOP/s", 9)
              + pad("im2col", 9) + pad("sgemm", 9) + pad("epilog", 9) + pad("other", 9))
        for layer in layers {
            let ms = median(layer.times)
            var line = pad(layer.name, 24, left: true)
            if let conv = layer.conv, let x = layer.input, let shape = try? conv.outputShape(for: x.shape) {
                line += pad("\(shape[1])×\(shape[2])×\(shape[3])", 16)
            } else {
                line += pad("", 16)
            }
            line += pad(fmt(ms), 9) + pad(fmt(100 * ms / layerSum, 1), 7)
            line += pad(layer.flops > 0 ? fmt(layer.flops / ms / 1e6, 1) : "", 9)
            if layer.conv != nil {
                let i = median(layer.phases.im2col), g = median(layer.phases.gemm), e = median(layer.phases.epilogue)
                line += pad(fmt(i), 9) + pad(fmt(g), 9) + pad(fmt(e), 9) + pad(fmt(ms - i - g - e), 9)
            }
            print(line)
        }
        print("")
        print("by kind:")
        for kind in Kind.allCases {
            let group = layers.filter { $0.kind == kind }
            guard !group.isEmpty else { continue }
            let ms = group.reduce(0) { $0 + median($1.times) }
            let flops = group.reduce(0) { $0 + $1.flops }
            var line = pad(kind.rawValue, 24, left: true) + pad("×\(group.count)", 5) + pad(fmt(ms), 10) + " ms"
                + pad(fmt(100 * ms / layerSum, 1), 7) + " %"
            if flops > 0 { line += pad(fmt(flops / ms / 1e6, 1), 9) + " GFLOP/s" }
            if group.first?.conv != nil {
                let i = group.reduce(0) { $0 + median($1.phases.im2col) }
                let g = group.reduce(0) { $0 + median($1.phases.gemm) }
                let e = group.reduce(0) { $0 + median($1.phases.epilogue) }
                line += "   im2col \(fmt(i)) sgemm \(fmt(g)) epilogue \(fmt(e))"
            }
            print(line)
        }
        print("")
        print("by stage:")
        var stages: [String] = []
        for layer in layers where !stages.contains(layer.stage) { stages.append(layer.stage) }
        for stage in stages {
            let ms = layers.filter { $0.stage == stage }.reduce(0) { $0 + median($1.times) }
            print(pad(stage, 24, left: true) + pad(fmt(ms), 10) + " ms" + pad(fmt(100 * ms / layerSum, 1), 7) + " %")
        }
        let convs = layers.filter { $0.conv != nil }
        let im2col = convs.reduce(0) { $0 + median($1.phases.im2col) }
        let gemm = convs.reduce(0) { $0 + median($1.phases.gemm) }
        let epilogue = convs.reduce(0) { $0 + median($1.phases.epilogue) }
        let convMs = convs.reduce(0) { $0 + median($1.times) }
        let flops = layers.reduce(0) { $0 + $1.flops }
        print("")
        print("convolutions: \(fmt(convMs)) ms in the layer calls; kernels alone: im2col \(fmt(im2col)) ms, "
              + "sgemm \(fmt(gemm)) ms (\(fmt(convs.reduce(0) { $0 + $1.flops } / gemm / 1e6, 1)) GFLOP/s), "
              + "epilogue \(fmt(epilogue)) ms")
        print("whole network: \(fmt(flops / 1e9, 2)) GFLOP, \(fmt(flops / total / 1e6, 1)) GFLOP/s")
    }
}

/// The CKernels description of `conv` on an input of `shape` `[N, C, H, W]`, as `Conv2d`
/// builds it for its kernels (one share; the activation fused in the epilogue).
func kernelParams(of conv: Conv2d, inputShape shape: [Int]) -> ek_conv2d_params {
    ek_conv2d_params(
        n: Int64(shape[0]), c: Int64(shape[1]), h: Int64(shape[2]), w: Int64(shape[3]),
        k: Int64(conv.outChannels), r: Int64(conv.kernelSize.h), s: Int64(conv.kernelSize.w),
        stride_h: Int64(conv.stride.h), stride_w: Int64(conv.stride.w),
        pad_h: Int64(conv.padding.h), pad_w: Int64(conv.padding.w),
        dilation_h: Int64(conv.dilation.h), dilation_w: Int64(conv.dilation.w),
        activation: conv.activation == .relu ? EK_ACT_RELU : EK_ACT_NONE, ith: 0, nth: 1, winograd_tile: 0)
}

/// A convolution's bias + activation epilogue on one image's output `[K, plane]` in place,
/// split over the output channels as `Conv2d` splits it.
func biasActivation(channels k: Int, plane: Int, bias: UnsafePointer<Float>?, _ act: ek_activation,
                    _ y: UnsafeMutablePointer<Float>, threads: Int) {
    let nth = max(1, min(threads, k))
    let shared = Unchecked((bias: bias, y: y))
    DispatchQueue.concurrentPerform(iterations: nth) { ith in
        _ = ek_bias_act_f32(Int64(k), Int64(plane), shared.value.bias, act, shared.value.y, Int32(ith), Int32(nth))
    }
}

/// Hands pointers to `concurrentPerform`'s shares, which touch disjoint parts of the buffers.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
