import Elucidate

/// A torchvision ResNet (torchvision head) evaluated in Double precision straight from its
/// state dict, batch norms unfolded: the reference that float32 results are judged against.
///
/// The network is piecewise linear (convolutions, inference batch norms, ReLU, max pool,
/// additions, average pool, linear), so a point lies on one linear piece, named by its
/// activation `Pattern` (every ReLU's state, every max-pool window's argmax). A forward pass
/// records that pattern, each kink's distance from switching, and how many roundings a
/// float32 forward and backward make along the longest path to each value — the n of
/// rounding-error bounds. `inputGradient` is the exact gradient of a piece (Double's rounding
/// aside): the piece the point lies on, or any other pattern, such as the one a float32
/// forward chose.
public struct ReferenceResNet: Sendable {
    struct Conv: Sendable {
        let weight: [Double]
        let outChannels: Int, inChannels: Int, kernel: Int, stride: Int, padding: Int
    }

    /// Inference batch norm as y = x·scale + shift per channel.
    struct Norm: Sendable {
        let scale: [Double], shift: [Double]
    }

    struct Block: Sendable {
        let name: String
        let convs: [(Conv, Norm)]
        let downsample: (Conv, Norm)?
    }

    let stem: (Conv, Norm)
    let stemPool: Bool
    let blocks: [Block]
    let fcWeight: [Double], fcBias: [Double]
    public let classes: Int
    public let inputChannels: Int

    public struct ReferenceError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads a torchvision-layout state dict as `ResNet(stateDict:)` does: basic or bottleneck
    /// blocks (stride on conv1 or conv2), a 7×7 stride-2 stem with a 3×3 stride-2 max pool or
    /// a 3×3 stride-1 stem without, downsample branches where their keys are.
    public init(stateDict: StateDict, eps: Double = 1e-5) throws {
        func tensor(_ key: String) throws -> Tensor {
            guard let t = stateDict[key] else { throw ReferenceError(description: "missing '\(key)'") }
            return t
        }
        func doubles(_ key: String) throws -> [Double] { try tensor(key).scalars.map(Double.init) }
        func conv(_ key: String, stride: Int) throws -> Conv {
            let w = try tensor(key)
            guard w.rank == 4, w.shape[2] == w.shape[3] else { throw ReferenceError(description: "'\(key)' has shape \(w.shape)") }
            return Conv(weight: w.scalars.map(Double.init), outChannels: w.shape[0], inChannels: w.shape[1],
                        kernel: w.shape[2], stride: stride, padding: w.shape[2] / 2)
        }
        func norm(_ prefix: String) throws -> Norm {
            let gamma = try doubles("\(prefix).weight"), beta = try doubles("\(prefix).bias")
            let mean = try doubles("\(prefix).running_mean"), variance = try doubles("\(prefix).running_var")
            let scale = gamma.indices.map { gamma[$0] / (variance[$0] + eps).squareRoot() }
            return Norm(scale: scale, shift: gamma.indices.map { beta[$0] - mean[$0] * scale[$0] })
        }
        guard !stateDict.contains("0.0.weight") else { throw ReferenceError(description: "the fastai layout is not supported") }
        let stemWeight = try tensor("conv1.weight")
        stemPool = stemWeight.shape[2] >= 7
        stem = (try conv("conv1.weight", stride: stemPool ? 2 : 1), try norm("bn1"))
        inputChannels = stemWeight.shape[1]
        let bottleneck = stateDict.contains("layer1.0.conv3.weight")
        var blocks: [Block] = []
        for stage in 1...4 {
            var index = 0
            while stateDict.contains("layer\(stage).\(index).conv1.weight") {
                let prefix = "layer\(stage).\(index)"
                let stride = stage > 1 && index == 0 ? 2 : 1
                let strided = bottleneck ? 2 : 1
                var convs: [(Conv, Norm)] = []
                for i in 1...(bottleneck ? 3 : 2) {
                    convs.append((try conv("\(prefix).conv\(i).weight", stride: i == strided ? stride : 1),
                                  try norm("\(prefix).bn\(i)")))
                }
                var downsample: (Conv, Norm)?
                if stateDict.contains("\(prefix).downsample.0.weight") {
                    downsample = (try conv("\(prefix).downsample.0.weight", stride: stride), try norm("\(prefix).downsample.1"))
                }
                blocks.append(Block(name: prefix, convs: convs, downsample: downsample))
                index += 1
            }
        }
        self.blocks = blocks
        let fc = try tensor("fc.weight")
        fcWeight = fc.scalars.map(Double.init)
        classes = fc.shape[0]
        fcBias = stateDict["fc.bias"].map { $0.scalars.map(Double.init) } ?? [Double](repeating: 0, count: classes)
    }

    // MARK: - Forward

    /// Shape [N, C, H, W] (the logits are [N, classes, 1, 1]).
    public struct Shape: Sendable, Equatable {
        public var n: Int, c: Int, h: Int, w: Int
        public var count: Int { n * c * h * w }
    }

    enum Op: Sendable {
        case input, conv(Conv), norm(Norm), relu, maxPool, add, globalAveragePool, linear
    }

    struct Node: Sendable {
        let op: Op
        let inputs: [Int]
        let shape: Shape
        let value: [Double]
        /// Roundings of a float32 forward along the longest path to this value (Winograd
        /// counted wherever it may run), and of a direct one (Double's forward, or Winograd off).
        let forwardRoundings: Int
        let directForwardRoundings: Int
        /// Roundings of a float32 backward from this value's gradient to its inputs', without
        /// and with Winograd.
        let backwardRoundings: (direct: Int, winograd: Int)
    }

    /// How much Winograd F(m×m, 3×3) (Elucidate's winograd.c: F(4×4) on points 0, ±1, ±2, ∞,
    /// F(5×5) on ±1, ±2, ±1/2, ∞, F(6×6) on 0, ±1, ±2, ±1/2, ∞, whichever the plane gets)
    /// enlarges rounding errors over a direct 3×3 sum, for inputs of independent signs: an error
    /// in the product M = (G g Gᵀ) ⊙ (Bᵀ d B) at (k, l) is typically ‖G_k‖‖G_l‖‖B_k‖‖B_l‖·|g||d|
    /// and reaches output (i, j) times A_ki·A_lj, so output (i, j) carries an error of typical
    /// size c_i·c_j·|g||d|·u with c_i = √(Σ_k A_ki²‖B_k‖²‖G_k‖²), where a direct 3×3 sum's
    /// result is of size 3·|g||d|: a factor max c_i·c_j / 3, 31.4 for F(4×4) and 46.3 for F(5×5)
    /// and F(6×6); the largest counts. (The worst case, from the ∞-norms, is 32 400 for F(4×4).)
    /// In the √n model of `forward`'s counts a factor f on an error is f² roundings.
    public static let winogradGrowth: Double = {
        let f4 = (bt: [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]] as [[Double]],
                  at: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]] as [[Double]],
                  g: [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                      [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]] as [[Double]])
        // F(5×5) and F(6×6) as tools/winograd_transforms.py generates them.
        let f5 = (bt: [[-4, -4, 17, 17, -4, -4, 0], [-4, 4, 17, -17, -4, 4, 0], [2, 1, -10, -5, 8, 4, 0],
                       [2, -1, -10, 5, 8, -4, 0], [4, 8, -5, -10, 1, 2, 0], [4, -8, -5, 10, 1, -2, 0],
                       [-4, 0, 21, 0, -21, 0, 4]] as [[Double]],
                  at: [[1, 1, 1, 1, 1, 1, 0], [1, -1, 2, -2, 1.0 / 2, -1.0 / 2, 0], [1, 1, 4, 4, 1.0 / 4, 1.0 / 4, 0],
                       [1, -1, 8, -8, 1.0 / 8, -1.0 / 8, 0], [1, 1, 16, 16, 1.0 / 16, 1.0 / 16, 1]] as [[Double]],
                  g: [[1.0 / 18, 1.0 / 18, 1.0 / 18], [1.0 / 18, -1.0 / 18, 1.0 / 18], [1.0 / 180, 1.0 / 90, 1.0 / 45],
                      [1.0 / 180, -1.0 / 90, 1.0 / 45], [8.0 / 45, 4.0 / 45, 2.0 / 45], [8.0 / 45, -4.0 / 45, 2.0 / 45],
                      [0, 0, 1.0 / 4]] as [[Double]])
        let f6 = (bt: [[4, 0, -21, 0, 21, 0, -4, 0], [0, -4, -4, 17, 17, -4, -4, 0], [0, 4, -4, -17, 17, 4, -4, 0],
                       [0, 2, 1, -10, -5, 8, 4, 0], [0, -2, 1, 10, -5, -8, 4, 0], [0, 4, 8, -5, -10, 1, 2, 0],
                       [0, -4, 8, 5, -10, -1, 2, 0], [0, -4, 0, 21, 0, -21, 0, 4]] as [[Double]],
                  at: [[1, 1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1.0 / 2, -1.0 / 2, 0],
                       [0, 1, 1, 4, 4, 1.0 / 4, 1.0 / 4, 0], [0, 1, -1, 8, -8, 1.0 / 8, -1.0 / 8, 0],
                       [0, 1, 1, 16, 16, 1.0 / 16, 1.0 / 16, 0], [0, 1, -1, 32, -32, 1.0 / 32, -1.0 / 32, 1]] as [[Double]],
                  g: [[1.0 / 4, 0, 0], [1.0 / 18, 1.0 / 18, 1.0 / 18], [1.0 / 18, -1.0 / 18, 1.0 / 18],
                      [1.0 / 360, 1.0 / 180, 1.0 / 90], [1.0 / 360, -1.0 / 180, 1.0 / 90], [16.0 / 45, 8.0 / 45, 4.0 / 45],
                      [16.0 / 45, -8.0 / 45, 4.0 / 45], [0, 0, 1.0 / 4]] as [[Double]])
        let norm = { (row: [Double]) in row.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        return [f4, f5, f6].map { tile in
            let c = tile.at.map { a in
                a.indices.reduce(0.0) { sum, k in
                    sum + a[k] * a[k] * norm(tile.bt[k]) * norm(tile.bt[k]) * norm(tile.g[k]) * norm(tile.g[k])
                }.squareRoot()
            }
            return c.max()! * c.max()! / 3
        }.max()!
    }()

    /// Whether Elucidate may run this convolution through Winograd (`Conv2d.usesWinograd`:
    /// 3×3, stride 1, at least 8 channels in and out; whether it pays for a given input
    /// is not modelled, so the counts assume it does).
    static func mayUseWinograd(_ conv: Conv) -> Bool {
        conv.kernel == 3 && conv.stride == 1 && conv.inChannels >= 8 && conv.outChannels >= 8
    }

    /// Roundings of a Winograd layer summing over `channels`: the channel sum and
    /// the transforms' 18 additions, each error enlarged by `winogradGrowth`.
    static func winogradRoundings(_ channels: Int) -> Int {
        Int((Double(channels + 18) * winogradGrowth * winogradGrowth).rounded(.up))
    }

    /// A kink of the network at one point: a ReLU site or a max pool.
    public struct Kink: Sendable {
        /// `stem.relu`, `maxpool`, `layer2.0.relu1` (inside a block), `layer2.0.out` (after
        /// the residual sum).
        public let name: String
        public let isMaxPool: Bool
        /// The values entering it: pre-activations (ReLU), the pooled plane (max pool).
        public let input: [Double]
        /// |pre-activation| per unit, or max − runner-up per window: how far from switching.
        public let margins: [Double]
        /// Roundings of a float32 forward along the longest path to `input`.
        public let forwardRoundings: Int
    }

    /// Which linear piece a point lies on: every ReLU's state (per site, in forward order)
    /// and every max pool's argmax (flat input index per output).
    public struct Pattern: Sendable, Equatable {
        public var relus: [[Bool]] = []
        public var argmaxes: [[Int]] = []
        public init() {}
    }

    /// A forward pass.
    public struct Trace: Sendable {
        let nodes: [Node]
        public let kinks: [Kink]
        public let pattern: Pattern
        public let inputShape: Shape
        public var logits: [Double] { nodes[nodes.count - 1].value }
        /// The globally pooled features the linear head takes.
        public var features: [Double] { nodes[nodes.count - 2].value }
        /// Roundings of a float32 forward along the longest path to the logits, with
        /// Winograd counted wherever it may run, or without (a direct forward, such as Double's).
        public func logitRoundings(winograd: Bool) -> Int {
            winograd ? nodes[nodes.count - 1].forwardRoundings : nodes[nodes.count - 1].directForwardRoundings
        }
        /// Roundings of a float32 backward along the longest path from the logits' gradient
        /// to the input's: GEMMs over the output channels, col2im's taps (or Winograd's
        /// transforms), the batch-norm fold's roundings of each weight, max-pool overlaps,
        /// the residual sums.
        public func backwardRoundings(winograd: Bool) -> Int { winograd ? longestBackward.winograd : longestBackward.direct }
        let longestBackward: (direct: Int, winograd: Int)
    }

    /// The forward pass at `x` (C order, `[n, inputChannels, h, w]`).
    public func forward(_ x: [Double], n: Int, h: Int, w: Int) -> Trace {
        var tape = Tape()
        let shape = Shape(n: n, c: inputChannels, h: h, w: w)
        precondition(x.count == shape.count, "\(x.count) values for \(shape)")
        tape.nodes.append(Node(op: .input, inputs: [], shape: shape, value: x, forwardRoundings: 0, directForwardRoundings: 0,
                               backwardRoundings: (0, 0)))
        var v = tape.convNorm(stem.0, stem.1, 0)
        v = tape.relu("stem.relu", v)
        if stemPool { v = tape.maxPool("maxpool", v) }
        for block in blocks {
            let blockInput = v
            var branch = blockInput
            for (i, (conv, norm)) in block.convs.enumerated() {
                branch = tape.convNorm(conv, norm, branch)
                if i < block.convs.count - 1 { branch = tape.relu("\(block.name).relu\(i + 1)", branch) }
            }
            var shortcut = blockInput
            if let (conv, norm) = block.downsample { shortcut = tape.convNorm(conv, norm, blockInput) }
            v = tape.relu("\(block.name).out", tape.add(branch, shortcut))
        }
        v = tape.globalAveragePool(v)
        v = tape.linear(fcWeight, fcBias, classes, v)
        func longestPath(_ roundings: (Node) -> Int) -> Int {
            var longest = [Int](repeating: -1, count: tape.nodes.count)
            longest[v] = 0
            for id in stride(from: v, through: 0, by: -1) where longest[id] >= 0 {
                for input in tape.nodes[id].inputs {
                    longest[input] = max(longest[input], longest[id] + roundings(tape.nodes[id]))
                }
            }
            return longest[0]
        }
        return Trace(nodes: tape.nodes, kinks: tape.kinks, pattern: tape.pattern, inputShape: shape,
                     longestBackward: (longestPath { $0.backwardRoundings.direct }, longestPath { $0.backwardRoundings.winograd }))
    }

    /// ∇ₓ Σ seed·logits on the linear piece `pattern` (default: the one `trace`'s point lies on).
    public func inputGradient(_ trace: Trace, seed: [Double], pattern: Pattern? = nil) -> [Double] {
        let nodes = trace.nodes
        let pattern = pattern ?? trace.pattern
        var reluSite = pattern.relus.count, poolSite = pattern.argmaxes.count
        var grads = [[Double]?](repeating: nil, count: nodes.count)
        grads[nodes.count - 1] = seed
        func accumulate(_ id: Int, _ g: [Double]) {
            grads[id] = grads[id].map { existing in zip(existing, g).map { $0 + $1 } } ?? g
        }
        for id in stride(from: nodes.count - 1, to: 0, by: -1) {
            guard let g = grads[id] else { continue }
            grads[id] = nil
            let node = nodes[id]
            let inShape = nodes[node.inputs[0]].shape
            switch node.op {
            case .input:
                break
            case .conv(let conv):
                accumulate(node.inputs[0], ReferenceResNet.convBackward(conv, g, inShape, node.shape))
            case .norm(let norm):
                let plane = node.shape.h * node.shape.w
                accumulate(node.inputs[0], g.indices.map { g[$0] * norm.scale[($0 / plane) % node.shape.c] })
            case .relu:
                reluSite -= 1
                let on = pattern.relus[reluSite]
                accumulate(node.inputs[0], g.indices.map { on[$0] ? g[$0] : 0 })
            case .maxPool:
                poolSite -= 1
                var dx = [Double](repeating: 0, count: inShape.count)
                for (o, at) in pattern.argmaxes[poolSite].enumerated() { dx[at] += g[o] }
                accumulate(node.inputs[0], dx)
            case .add:
                accumulate(node.inputs[0], g)
                accumulate(node.inputs[1], g)
            case .globalAveragePool:
                let plane = inShape.h * inShape.w
                accumulate(node.inputs[0], (0..<inShape.count).map { g[$0 / plane] / Double(plane) })
            case .linear:
                let features = inShape.c * inShape.h * inShape.w
                var dx = [Double](repeating: 0, count: inShape.count)
                for img in 0..<inShape.n {
                    for k in 0..<classes {
                        for f in 0..<features { dx[img * features + f] += g[img * classes + k] * fcWeight[k * features + f] }
                    }
                }
                accumulate(node.inputs[0], dx)
            }
        }
        return grads[0] ?? [Double](repeating: 0, count: trace.inputShape.count)
    }

    // MARK: - Layers in Double

    struct Tape {
        var nodes: [Node] = []
        var kinks: [Kink] = []
        var pattern = Pattern()

        /// Appends a node whose value took `forward` more roundings than its inputs' (on the
        /// longest path; `directForward` without Winograd) and whose backward takes `backward`.
        mutating func append(_ op: Op, _ inputs: [Int], _ shape: Shape, _ value: [Double], _ forward: Int, _ backward: Int,
                             directForward: Int? = nil, winogradBackward: Int? = nil) -> Int {
            nodes.append(Node(op: op, inputs: inputs, shape: shape, value: value,
                              forwardRoundings: inputs.map { nodes[$0].forwardRoundings }.max()! + forward,
                              directForwardRoundings: inputs.map { nodes[$0].directForwardRoundings }.max()! + (directForward ?? forward),
                              backwardRoundings: (backward, winogradBackward ?? backward)))
            return nodes.count - 1
        }

        /// A convolution and its batch norm. Float32 folds the norm into the convolution
        /// (each weight times a scale made with 3 roundings, a shift with 2, and the product
        /// rounded once more) and sums C·R·S products and the bias; its backward is a GEMM
        /// over the K output channels and col2im's at most R·S taps per input element. A
        /// layer Winograd may take counts as `winogradRoundings` (C, or K backward) instead;
        /// the forward counts assume Winograd wherever it may run (Winograd on or off).
        mutating func convNorm(_ conv: Conv, _ norm: Norm, _ input: Int) -> Int {
            let x = nodes[input]
            let out = Shape(n: x.shape.n, c: conv.outChannels,
                            h: (x.shape.h + 2 * conv.padding - conv.kernel) / conv.stride + 1,
                            w: (x.shape.w + 2 * conv.padding - conv.kernel) / conv.stride + 1)
            let taps = conv.kernel * conv.kernel
            let y = ReferenceResNet.convForward(conv, x.value, x.shape, out)
            let winograd = ReferenceResNet.mayUseWinograd(conv)
            let forward = winograd ? ReferenceResNet.winogradRoundings(conv.inChannels) : conv.inChannels * taps
            let c = append(.conv(conv), [input], out, y, forward, conv.outChannels + taps + 4, directForward: conv.inChannels * taps,
                           winogradBackward: winograd ? ReferenceResNet.winogradRoundings(conv.outChannels) + 4 : nil)
            let plane = out.h * out.w
            let normed = y.indices.map { i in y[i] * norm.scale[(i / plane) % out.c] + norm.shift[(i / plane) % out.c] }
            return append(.norm(norm), [c], out, normed, 5, 0)
        }

        mutating func relu(_ name: String, _ input: Int) -> Int {
            let x = nodes[input]
            kinks.append(Kink(name: name, isMaxPool: false, input: x.value, margins: x.value.map(abs),
                              forwardRoundings: x.forwardRoundings))
            pattern.relus.append(x.value.map { $0 > 0 })
            return append(.relu, [input], x.shape, x.value.map { max($0, 0) }, 0, 0)
        }

        /// torchvision's stem pool: 3×3, stride 2, padding 1 (padding never wins). Overlapping
        /// windows: the backward adds up to 4 windows' gradients per element.
        mutating func maxPool(_ name: String, _ input: Int) -> Int {
            let x = nodes[input], s = x.shape
            let out = Shape(n: s.n, c: s.c, h: (s.h + 2 - 3) / 2 + 1, w: (s.w + 2 - 3) / 2 + 1)
            var y = [Double](), argmax = [Int](), margins = [Double]()
            for plane in 0..<(s.n * s.c) {
                for oh in 0..<out.h {
                    for ow in 0..<out.w {
                        var best = -Double.infinity, second = -Double.infinity, at = -1
                        for ih in max(oh * 2 - 1, 0)...min(oh * 2 + 1, s.h - 1) {
                            for iw in max(ow * 2 - 1, 0)...min(ow * 2 + 1, s.w - 1) {
                                let i = plane * s.h * s.w + ih * s.w + iw
                                if x.value[i] > best { second = best; best = x.value[i]; at = i } else if x.value[i] > second { second = x.value[i] }
                            }
                        }
                        y.append(best)
                        argmax.append(at)
                        margins.append(best - second)
                    }
                }
            }
            kinks.append(Kink(name: name, isMaxPool: true, input: x.value, margins: margins, forwardRoundings: x.forwardRoundings))
            pattern.argmaxes.append(argmax)
            return append(.maxPool, [input], out, y, 0, 4)
        }

        /// The residual sum; backward, the graph adds the two branches' gradients where they meet.
        mutating func add(_ a: Int, _ b: Int) -> Int {
            let x = nodes[a], z = nodes[b]
            return append(.add, [a, b], x.shape, zip(x.value, z.value).map { $0 + $1 }, 1, 1)
        }

        mutating func globalAveragePool(_ input: Int) -> Int {
            let x = nodes[input], plane = x.shape.h * x.shape.w
            let out = Shape(n: x.shape.n, c: x.shape.c, h: 1, w: 1)
            let y = (0..<out.count).map { p in x.value[(p * plane)..<((p + 1) * plane)].reduce(0, +) / Double(plane) }
            return append(.globalAveragePool, [input], out, y, plane + 1, 1)
        }

        mutating func linear(_ weight: [Double], _ bias: [Double], _ classes: Int, _ input: Int) -> Int {
            let x = nodes[input], features = x.shape.c * x.shape.h * x.shape.w
            let out = Shape(n: x.shape.n, c: classes, h: 1, w: 1)
            var y = [Double]()
            for img in 0..<x.shape.n {
                for k in 0..<classes {
                    var acc = bias[k]
                    for f in 0..<features { acc += weight[k * features + f] * x.value[img * features + f] }
                    y.append(acc)
                }
            }
            return append(.linear, [input], out, y, features + 1, classes)
        }
    }

    /// The convolution (`transpose`: its adjoint, from an output-shaped `source` to an
    /// input-shaped result) as plain loops over raw pointers, which a debug build runs fast enough.
    static func convolve(_ conv: Conv, _ source: [Double], _ inShape: Shape, _ outShape: Shape, transpose: Bool) -> [Double] {
        var result = [Double](repeating: 0, count: transpose ? inShape.count : outShape.count)
        let (h, w, oh, ow) = (inShape.h, inShape.w, outShape.h, outShape.w)
        let (r, stride, pad) = (conv.kernel, conv.stride, conv.padding)
        source.withUnsafeBufferPointer { sb in
            conv.weight.withUnsafeBufferPointer { wb in
                result.withUnsafeMutableBufferPointer { rb in
                    let (sp, wp, rp) = (sb.baseAddress!, wb.baseAddress!, rb.baseAddress!)
                    for img in 0..<inShape.n {
                        for k in 0..<conv.outChannels {
                            let yPlane = (img * conv.outChannels + k) * oh * ow
                            for c in 0..<conv.inChannels {
                                let xPlane = (img * conv.inChannels + c) * h * w
                                for i in 0..<r {
                                    for j in 0..<r {
                                        let wv = wp[((k * conv.inChannels + c) * r + i) * r + j]
                                        // Output columns whose input column q·stride − pad + j is in 0..<w.
                                        let first = max(0, (pad - j + stride - 1) / stride)
                                        let count = min(ow, (w - 1 + pad - j) / stride + 1) - first
                                        if count <= 0 { continue }
                                        for o in 0..<oh {
                                            let ih = o * stride - pad + i
                                            if ih < 0 || ih >= h { continue }
                                            var x = xPlane + ih * w + first * stride - pad + j
                                            var y = yPlane + o * ow + first
                                            if transpose {
                                                for _ in 0..<count { rp[x] += wv * sp[y]; x += stride; y += 1 }
                                            } else {
                                                for _ in 0..<count { rp[y] += wv * sp[x]; x += stride; y += 1 }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    static func convForward(_ conv: Conv, _ x: [Double], _ inShape: Shape, _ outShape: Shape) -> [Double] {
        convolve(conv, x, inShape, outShape, transpose: false)
    }

    static func convBackward(_ conv: Conv, _ dy: [Double], _ inShape: Shape, _ outShape: Shape) -> [Double] {
        convolve(conv, dy, inShape, outShape, transpose: true)
    }
}
