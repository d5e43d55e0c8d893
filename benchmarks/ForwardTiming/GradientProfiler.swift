import BenchmarkSupport
import CKernels
import Elucidate
import Foundation

/// Per-layer timing of the gradient path (`forward-timing --profile-gradient`): the forward
/// recorded in a `Graph` and the backward for the input gradient only, as Saliency,
/// Integrated Gradients and NoiseTunnel run them (`.gradient` ReLU rule, frozen weights).
///
/// The network is `Profiler`'s rebuild of `ResNet` from public layers (batch norms folded,
/// ReLU fused). Three measurements, each the median of `--repeat` runs:
///
/// 1. The recorded forward, one graph operation at a time, in one `Graph`, in the order
///    `ResNet.logits(_:in:)` records them (`graph.conv2d`, `graph.pool`, `graph.add`, …).
/// 2. The backward, one operation at a time. `Graph.gradients` runs every node's backward
///    inside one call, and the layers' backward halves are internal to the engine, so each
///    step is a one-operation graph whose leaves are the values the real pass saw and whose
///    seed is the gradient the real pass hands that operation; only `gradients(of:seed:for:)`
///    is timed. A convolution with a fused ReLU is split into its ReLU mask (a `graph.relu`
///    on its output: the same kernel as the fused backward) and its input gradient (the same
///    layer with the activation off). The chain ends at the image; its result is checked
///    against the whole graph's gradient.
/// 3. The whole pass with the engine's own `ResNet`: `logits(_:in:)` + `gradients`, beside
///    the plain inference `logits(_:)`.
struct GradientProfiler {
    typealias Kind = Profiler.Kind

    /// The algorithm the engine ran for a convolution or its input gradient.
    enum Path: String {
        /// Winograd F(m×m, 3×3): input transform, (m + 2)² products, output transform.
        case winograd = "Wino"
        /// Forward: im2col + sgemm + bias/ReLU epilogue; input gradient: sgemm (Wᵀ·dy) + col2im.
        case im2col = "i2c"
        /// 1×1 stride-1: one sgemm per image on the tensor itself, no column matrix.
        case direct = "gemm"
    }

    struct Row {
        let name: String
        let kind: Kind
        let stage: String
        var outShape: [Int] = []
        /// 2 · multiply-adds of the layer's forward; its input gradient does as many.
        var flops: Double = 0
        var conv: Conv2d?
        var forwardPath: Path?
        var backwardPath: Path?
        /// The operation's inputs and output in the latest recorded forward.
        var inputs: [Tensor] = []
        var output: Tensor?
        /// Milliseconds per run: the recorded forward operation; the layer's own backward
        /// (a convolution's or pool's input gradient, the fc's); the ReLU backward mask; the
        /// sum of the two branches' gradients at a block's input; the forward's bias/ReLU
        /// epilogue kernel alone (im2col and direct forwards only: Winograd fuses it into its
        /// output transform). The last is part of `forward`, not added to it.
        var forward: [Double] = []
        var inputGradient: [Double] = []
        var mask: [Double] = []
        var sum: [Double] = []
        var bias: [Double] = []

        var backwardMilliseconds: Double { median(inputGradient) + median(mask) + median(sum) }
        var totalMilliseconds: Double { median(forward) + backwardMilliseconds }
    }

    /// Row indices of one residual block.
    struct BlockRows {
        var convolutions: [Int] = []
        var downsample: Int?
        var add = 0
    }

    let network: Profiler
    let reference: ResNet
    let options: Options

    init(architecture: ResNetArchitecture, stateDict: StateDict, options: Options) throws {
        network = try Profiler(architecture: architecture, stateDict: stateDict, options: options)
        reference = try ResNet(stateDict: stateDict, architecture: architecture)
        self.options = options
    }

    // MARK: Recorded forward

    /// Records the forward pass in `graph` as `ResNet.logits(_:in:)` does, timing each
    /// operation; `rows` and `blocks` are filled on the first pass, the times when `record`.
    func recordForward(_ image: Variable, in graph: Graph, rows: inout [Row], blocks: inout [BlockRows],
                       record: Bool) throws -> Variable {
        var index = 0
        func step(_ name: String, _ kind: Kind, _ stage: String, conv: Conv2d? = nil, inputs: [Variable],
                  _ body: () throws -> Variable) rethrows -> Variable {
            let start = now()
            let output = try body()
            let elapsed = milliseconds(now() - start)
            if index == rows.count {
                var row = Row(name: name, kind: kind, stage: stage, outShape: output.shape, conv: conv)
                if let conv {
                    let s = conv.kernelSize
                    row.flops = 2.0 * Double(output.value.count) * Double(conv.inChannels * s.h * s.w)
                } else if kind == .linear {
                    row.flops = 2.0 * Double(output.value.count) * Double(network.fc.inFeatures)
                }
                rows.append(row)
            }
            rows[index].inputs = inputs.map(\.value)
            rows[index].output = output.value
            if record { rows[index].forward.append(elapsed) }
            index += 1
            return output
        }
        let firstPass = blocks.isEmpty
        let stem = network.stem
        var x = try step("conv1+bn1+relu", .stem, "stem", conv: stem, inputs: [image]) { try graph.conv2d(image, stem) }
        if let pool = network.stemPool {
            x = try step("maxpool", .maxPool, "stem", inputs: [x]) { [x] in try graph.pool(x, pool) }
        }
        for (s, stage) in network.stages.enumerated() {
            let stageName = "layer\(s + 1)"
            for block in stage {
                var rowsOfBlock = BlockRows()
                let blockInput = x
                var y = x
                for (c, conv) in block.convolutions.enumerated() {
                    let kind: Kind = conv.kernelSize.h == 1 ? .conv1x1 : .conv3x3
                    rowsOfBlock.convolutions.append(index)
                    y = try step("\(block.prefix).conv\(c + 1)", kind, stageName, conv: conv, inputs: [y]) { [y] in
                        try graph.conv2d(y, conv)
                    }
                }
                var shortcut = blockInput
                if let downsample = block.downsample {
                    rowsOfBlock.downsample = index
                    shortcut = try step("\(block.prefix).downsample", .downsample, stageName, conv: downsample,
                                        inputs: [blockInput]) { try graph.conv2d(blockInput, downsample) }
                }
                rowsOfBlock.add = index
                x = step("\(block.prefix).add+relu", .add, stageName, inputs: [y, shortcut]) { [y, shortcut] in
                    graph.add(y, shortcut, activation: .relu)
                }
                if firstPass { blocks.append(rowsOfBlock) }
            }
        }
        let pool = network.globalPool
        let pooled = try step("avgpool", .avgPool, "head", inputs: [x]) { [x] in
            let p = try graph.adaptivePool(x, pool)
            return graph.reshape(p, [p.shape[0], p.shape[1]])
        }
        let fc = network.fc
        return try step("fc", .linear, "head", inputs: [pooled]) { try graph.linear(pooled, fc) }
    }

    // MARK: Backward, one operation at a time

    /// The gradient of leaf 0 of a graph holding `inputs` as leaves and `operation` recorded
    /// on them, for `seed`, and the milliseconds `gradients(of:seed:for:)` took.
    func backward(_ inputs: [Tensor], seed: Tensor,
                  _ operation: (Graph, [Variable]) throws -> Variable) throws -> (Tensor, Double) {
        let graph = Graph()
        let leaves = inputs.map { graph.input($0) }
        let output = try operation(graph, leaves)
        let start = now()
        let gradient = try graph.gradients(of: output, seed: seed, for: [leaves[0]])[0]
        return (gradient, milliseconds(now() - start))
    }

    /// A convolution's backward: the ReLU mask when its ReLU is fused (into `rows[i].mask`),
    /// then its input gradient with the activation off (into `rows[i].inputGradient`).
    func convolutionBackward(_ gradient: Tensor, row i: Int, rows: inout [Row], record: Bool) throws -> Tensor {
        var conv = rows[i].conv!
        var g = gradient
        if conv.activation == .relu {
            let (masked, ms) = try backward([rows[i].output!], seed: g) { graph, x in graph.relu(x[0]) }
            if record { rows[i].mask.append(ms) }
            g = masked
            conv.activation = .identity
        }
        let linear = conv
        let (dx, ms) = try backward([rows[i].inputs[0]], seed: g) { graph, x in try graph.conv2d(x[0], linear) }
        if record { rows[i].inputGradient.append(ms) }
        return dx
    }

    /// The input gradient of the whole pass for `seed`, one operation at a time, walking the
    /// rows of the latest recorded forward backwards.
    func backwardChain(seed: Tensor, rows: inout [Row], blocks: [BlockRows], record: Bool) throws -> Tensor {
        var i = rows.count - 1
        let fc = network.fc
        var (g, ms) = try backward(rows[i].inputs, seed: seed) { graph, x in try graph.linear(x[0], fc) }
        if record { rows[i].inputGradient.append(ms) }
        i -= 1
        let pool = network.globalPool
        (g, ms) = try backward(rows[i].inputs, seed: g) { graph, x in
            let p = try graph.adaptivePool(x[0], pool)
            return graph.reshape(p, [p.shape[0], p.shape[1]])
        }
        if record { rows[i].inputGradient.append(ms) }
        for block in blocks.reversed() {
            let add = block.add
            (g, ms) = try backward(rows[add].inputs, seed: g) { graph, x in graph.add(x[0], x[1], activation: .relu) }
            if record { rows[add].mask.append(ms) }
            var shortcut = g
            if let d = block.downsample {
                shortcut = try convolutionBackward(g, row: d, rows: &rows, record: record)
            }
            for c in block.convolutions.reversed() {
                g = try convolutionBackward(g, row: c, rows: &rows, record: record)
            }
            // The block input feeds both branches: `Graph.gradients` adds their gradients.
            let start = now()
            g = shortcut.adding(g)
            if record { rows[add].sum.append(milliseconds(now() - start)) }
        }
        if let poolRow = rows.firstIndex(where: { $0.kind == .maxPool }), let pool = network.stemPool {
            (g, ms) = try backward(rows[poolRow].inputs, seed: g) { graph, x in try graph.pool(x[0], pool) }
            if record { rows[poolRow].inputGradient.append(ms) }
        }
        return try convolutionBackward(g, row: 0, rows: &rows, record: record)
    }

    // MARK: Paths and epilogues

    /// Which algorithm the engine ran: `compute` under the current `Runtime.winogradEnabled`
    /// and again with Winograd forced off; Winograd rounds differently from im2col, so equal
    /// bits mean the engine took im2col (or the direct product) both times.
    func path(of conv: Conv2d, inputShape: [Int], _ compute: () throws -> Tensor) rethrows -> Path {
        let chosen = try compute()
        let setting = Runtime.winogradEnabled
        Runtime.winogradEnabled = false
        defer { Runtime.winogradEnabled = setting }
        let columns = try compute()
        let same = chosen.withUnsafeBufferPointer { a in
            columns.withUnsafeBufferPointer { b in memcmp(a.baseAddress!, b.baseAddress!, a.count * 4) == 0 }
        }
        if !same { return .winograd }
        var params = kernelParams(of: conv, inputShape: inputShape)
        return ek_conv2d_scratch_size(&params) > 0 ? .im2col : .direct
    }

    /// Finds each convolution's forward and input-gradient paths (after one recorded pass).
    func classify(_ rows: inout [Row]) throws {
        for i in rows.indices {
            guard var conv = rows[i].conv else { continue }
            let x = rows[i].inputs[0]
            rows[i].forwardPath = try path(of: conv, inputShape: x.shape) { try conv(x) }
            conv.activation = .identity
            let linear = conv, seed = rows[i].output!
            rows[i].backwardPath = try path(of: conv, inputShape: x.shape) {
                try backward([x], seed: seed) { graph, v in try graph.conv2d(v[0], linear) }.0
            }
        }
    }

    /// Times the bias/ReLU epilogue kernel alone on a copy of the output of each convolution
    /// whose forward is not Winograd (im2col or direct), image by image as `Conv2d` runs it.
    func timeBiasEpilogues(_ rows: inout [Row]) {
        let threads = Runtime.threadCount
        for i in rows.indices {
            guard let conv = rows[i].conv, rows[i].forwardPath != .winograd, var y = rows[i].output else { continue }
            guard conv.bias != nil || conv.activation != .identity else { continue }
            let shape = y.shape, plane = shape[2] * shape[3], k = shape[1]
            let act = conv.activation == .relu ? EK_ACT_RELU : EK_ACT_NONE
            y.withUnsafeMutableBufferPointer { _ in }  // the copy, outside the timed region
            func withBias(_ body: (UnsafePointer<Float>?) -> Void) {
                if let b = conv.bias { b.withUnsafeBufferPointer { body($0.baseAddress) } } else { body(nil) }
            }
            withBias { bias in
                y.withUnsafeMutableBufferPointer { out in
                    for run in 0...options.repeats {
                        let start = now()
                        for image in 0..<shape[0] {
                            biasActivation(channels: k, plane: plane, bias: bias, act,
                                           out.baseAddress! + image * k * plane, threads: threads)
                        }
                        if run > 0 { rows[i].bias.append(milliseconds(now() - start)) }
                    }
                }
            }
        }
    }

    // MARK: Run

    func run(_ input: Tensor) throws {
        let seed = topClassSeed(try reference.logits(input))
        var rows: [Row] = []
        var blocks: [BlockRows] = []
        var wholeBackward: [Double] = []
        var chainError: Float = 0
        for run in 0..<(max(1, options.warmup) + options.repeats) {
            let record = run >= max(1, options.warmup)
            let graph = Graph()
            let image = graph.input(input)
            let logits = try recordForward(image, in: graph, rows: &rows, blocks: &blocks, record: record)
            let start = now()
            let whole = try graph.gradients(of: logits, seed: seed, for: [image])[0]
            if record { wholeBackward.append(milliseconds(now() - start)) }
            if run == 0 { try classify(&rows) }
            let chained = try backwardChain(seed: seed, rows: &rows, blocks: blocks, record: record)
            chainError = max(chainError, maxDifference(whole, chained))
        }
        timeBiasEpilogues(&rows)
        let pass = try timeWholePass(input, seed: seed)
        report(rows, wholeBackward: wholeBackward, chainError: chainError, pass: pass)
    }

    /// The engine's own pass: inference `logits(_:)`, and `logits(_:in:)` + `gradients`.
    func timeWholePass(_ input: Tensor, seed: Tensor) throws -> (inference: Double, forward: Double, backward: Double) {
        var inference: [Double] = [], forward: [Double] = [], backward: [Double] = []
        for run in 0..<(max(1, options.warmup) + options.repeats) {
            let record = run >= max(1, options.warmup)
            var start = now()
            consume(try reference.logits(input))
            if record { inference.append(milliseconds(now() - start)) }
            start = now()
            let graph = Graph()
            let image = graph.input(input)
            let logits = try reference.logits(image, in: graph)
            var end = now()
            if record { forward.append(milliseconds(end - start)) }
            consume(try graph.gradients(of: logits, seed: seed, for: [image])[0])
            start = end
            end = now()
            if record { backward.append(milliseconds(end - start)) }
        }
        return (median(inference), median(forward), median(backward))
    }

    // MARK: Report

    func report(_ rows: [Row], wholeBackward: [Double],
                chainError: Float, pass: (inference: Double, forward: Double, backward: Double)) {
        let forwardSum = rows.reduce(0) { $0 + median($1.forward) }
        let backwardSum = rows.reduce(0) { $0 + $1.backwardMilliseconds }
        let total = forwardSum + backwardSum
        print("Elucidate \(network.architecture.name) gradient path, batch \(options.batch), "
              + "\(options.size)×\(options.size), \(Runtime.threadCount) threads, ISA \(Runtime.instructionSet), "
              + "OpenBLAS core \(Runtime.blas.coreName ?? "?"), Winograd \(Runtime.winogradEnabled ? "on" : "off"); "
              + "medians of \(options.repeats) runs")
        print("whole pass (ResNet.logits(_:in:) + gradients): \(fmt(pass.forward + pass.backward)) ms = "
              + "recorded forward \(fmt(pass.forward)) + input-gradient backward \(fmt(pass.backward)); "
              + "inference forward alone \(fmt(pass.inference)) ms")
        print("layer by layer: forward \(fmt(forwardSum)) + backward \(fmt(backwardSum)) = \(fmt(total)) ms; "
              + "the same graph's gradients in one call \(fmt(median(wholeBackward))) ms; "
              + "chain vs whole-graph gradient: max |difference| \(chainError)")
        print("")
        print(pad("layer", 24, left: true) + pad("shape out", 14) + pad("path", 10) + pad("fwd", 9)
              + pad("dX", 9) + pad("mask", 8) + pad("sum", 8) + pad("bias", 8) + pad("total", 9) + pad("%", 6)
              + pad("dX GF/s", 9))
        for row in rows {
            var line = pad(row.name, 24, left: true)
            line += pad(row.outShape.count == 4 ? "\(row.outShape[1])×\(row.outShape[2])×\(row.outShape[3])" : "", 14)
            line += pad(row.forwardPath.map { "\($0.rawValue)/\(row.backwardPath?.rawValue ?? "?")" } ?? "", 10)
            line += pad(fmt(median(row.forward)), 9) + pad(optional(row.inputGradient), 9)
            line += pad(optional(row.mask), 8) + pad(optional(row.sum), 8) + pad(optional(row.bias), 8)
            line += pad(fmt(row.totalMilliseconds), 9) + pad(fmt(100 * row.totalMilliseconds / total, 1), 6)
            line += pad(row.flops > 0 && !row.inputGradient.isEmpty ? fmt(row.flops / median(row.inputGradient) / 1e6, 1) : "", 9)
            print(line)
        }
        print("")
        print("by kind:" + pad("fwd", 27) + pad("dX", 10) + pad("mask", 10) + pad("sum", 10) + pad("total", 10) + pad("%", 7))
        func sums(_ group: [Row]) -> String {
            let f = group.reduce(0) { $0 + median($1.forward) }
            let d = group.reduce(0) { $0 + median($1.inputGradient) }
            let m = group.reduce(0) { $0 + median($1.mask) }
            let s = group.reduce(0) { $0 + median($1.sum) }
            return pad(fmt(f), 10) + pad(fmt(d), 10) + pad(fmt(m), 10) + pad(fmt(s), 10) + pad(fmt(f + d + m + s), 10)
                + pad(fmt(100 * (f + d + m + s) / total, 1), 7)
        }
        for kind in Kind.allCases {
            let group = rows.filter { $0.kind == kind }
            guard !group.isEmpty else { continue }
            print(pad(kind.rawValue, 24, left: true) + pad("×\(group.count)", 5) + sums(group))
        }
        print("")
        print("by network stage:")
        var stages: [String] = []
        for row in rows where !stages.contains(row.stage) { stages.append(row.stage) }
        for stage in stages {
            print(pad(stage, 24, left: true) + pad("", 5) + sums(rows.filter { $0.stage == stage }))
        }
        print("")
        print("by pass stage:")
        func line(_ label: String, _ ms: Double, _ note: String = "") {
            print(pad(label, 52, left: true) + pad(fmt(ms), 10) + " ms" + pad(fmt(100 * ms / total, 1), 7) + " %" + note)
        }
        line("recorded forward (all operations)", forwardSum)
        let convs = rows.filter { $0.conv != nil }
        for path in [Path.winograd, .im2col, .direct] {
            let group = convs.filter { $0.backwardPath == path }
            guard !group.isEmpty else { continue }
            let ms = group.reduce(0) { $0 + median($1.inputGradient) }
            let flops = group.reduce(0) { $0 + $1.flops }
            line("conv input gradients, \(path.rawValue) (×\(group.count))", ms, "  \(fmt(flops / ms / 1e6, 1)) GFLOP/s")
        }
        line("ReLU masks of convolutions", convs.reduce(0) { $0 + median($1.mask) })
        let adds = rows.filter { $0.kind == .add }
        line("residual add: ReLU masks", adds.reduce(0) { $0 + median($1.mask) })
        line("residual add: branch gradient sums", adds.reduce(0) { $0 + median($1.sum) })
        line("max-pool backward", rows.filter { $0.kind == .maxPool }.reduce(0) { $0 + median($1.inputGradient) })
        line("head backward (avg pool, fc)",
             rows.filter { $0.kind == .avgPool || $0.kind == .linear }.reduce(0) { $0 + median($1.inputGradient) })
        let biased = convs.filter { !$0.bias.isEmpty }
        line("(in forward) bias+ReLU epilogues, im2col/gemm (×\(biased.count))", biased.reduce(0) { $0 + median($1.bias) },
             "  Winograd layers fuse theirs")
    }
}

func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in zip(x, y).reduce(0) { max($0, abs($1.0 - $1.1)) } }
    }
}

private func fmt(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }

/// The median of `values` formatted, or blank when the row has no such step.
private func optional(_ values: [Double]) -> String { values.isEmpty ? "" : fmt(median(values)) }

private func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
    let p = String(repeating: " ", count: max(0, n - s.count))
    return left ? s + p : p + s
}
