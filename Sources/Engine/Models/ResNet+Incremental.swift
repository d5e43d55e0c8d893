import CKernels

/// Exact incremental evaluation of a ResNet on many copies of one image that each differ
/// from it inside one small box (occlusion): the unoccluded activations are computed once,
/// and each copy recomputes, layer by layer, only the region its change can reach (the
/// box's projective field through each convolution and pooling), reading the stored
/// activations everywhere else. A layer whose region covers most of it is recomputed whole.
///
/// This is the exact incremental inference of Nakandala, Kumar & Papakonstantinou
/// (SIGMOD 2019), without their approximate or adaptive (drill-down) parts.
struct IncrementalEvaluator {
    /// A rectangle [y0, y1) × [x0, x1) of an activation's spatial plane.
    struct Region: Equatable {
        var y0: Int, y1: Int, x0: Int, x1: Int
        var height: Int { y1 - y0 }
        var width: Int { x1 - x0 }
        var area: Int { max(0, height) * max(0, width) }
        static func whole(_ height: Int, _ width: Int) -> Region { Region(y0: 0, y1: height, x0: 0, x1: width) }
        func union(_ other: Region) -> Region {
            Region(y0: min(y0, other.y0), y1: max(y1, other.y1), x0: min(x0, other.x0), x1: max(x1, other.x1))
        }
    }

    /// An activation `[1, C, H, W]` as the unoccluded one with `values` `[1, C, h, w]` over `region`.
    struct Patch {
        var region: Region
        var values: Tensor
    }

    /// Kernel, stride and padding of a convolution or pooling along both axes.
    struct Geometry {
        var kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)
        init(_ conv: Conv2d) {
            precondition(conv.dilation == (1, 1), "incremental evaluation needs undilated convolutions")
            kernel = conv.kernelSize
            stride = conv.stride
            padding = conv.padding
        }
        init(_ pool: Pool2d) {
            precondition(pool.dilation == (1, 1) && !pool.ceilMode, "incremental evaluation needs plain pooling")
            kernel = pool.kernelSize
            stride = pool.stride
            padding = pool.padding
        }
    }

    struct BlockActivations {
        let input: Tensor
        /// Outputs of every convolution of the main path but the last.
        let intermediates: [Tensor]
        let output: Tensor
    }

    let network: ResNet
    let image: Tensor
    let stemOutput: Tensor
    let poolOutput: Tensor?
    let blocks: [(ResidualBlock, BlockActivations)]
    /// Fraction of a layer's plane above which it is recomputed whole.
    let fullThreshold: Double

    init(network: ResNet, input: Tensor, fullThreshold: Double = 0.5) throws(ElucidateError) {
        precondition(input.shape[0] == 1, "one image at a time")
        try network.validate(inputShape: input.shape)
        self.network = network
        self.image = input
        self.fullThreshold = fullThreshold
        stemOutput = try network.stem(input)
        var x = stemOutput
        if let pool = network.stemPool {
            x = try pool(x)
            poolOutput = x
        } else {
            poolOutput = nil
        }
        var blocks: [(ResidualBlock, BlockActivations)] = []
        for stage in network.stages {
            for block in stage {
                var intermediates: [Tensor] = []
                var y = x
                for conv in block.convolutions.dropLast() {
                    y = try conv(y)
                    intermediates.append(y)
                }
                let output = try block(x)
                blocks.append((block, BlockActivations(input: x, intermediates: intermediates, output: output)))
                x = output
            }
        }
        self.blocks = blocks
    }

    // MARK: - Region arithmetic

    /// Output rows an input range [a, b) can change through one axis of a layer.
    static func affected(_ a: Int, _ b: Int, kernel k: Int, stride s: Int, padding p: Int, outSize: Int) -> (Int, Int) {
        let lower = floorDiv(a + p - k + 1 + s - 1, s)
        let upper = floorDiv(b - 1 + p, s) + 1
        return (max(0, lower), min(outSize, upper))
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    func affected(_ region: Region, _ g: Geometry, outHeight: Int, outWidth: Int) -> Region {
        let (y0, y1) = Self.affected(region.y0, region.y1, kernel: g.kernel.0, stride: g.stride.0, padding: g.padding.0, outSize: outHeight)
        let (x0, x1) = Self.affected(region.x0, region.x1, kernel: g.kernel.1, stride: g.stride.1, padding: g.padding.1, outSize: outWidth)
        return widened(Region(y0: y0, y1: max(y0, y1), x0: x0, x1: max(x0, x1)), height: outHeight, width: outWidth)
    }

    /// The whole plane when `region` covers more than `fullThreshold` of it.
    func widened(_ region: Region, height: Int, width: Int) -> Region {
        Double(region.area) > fullThreshold * Double(height * width) ? .whole(height, width) : region
    }

    // MARK: - Tensor plumbing

    /// `base` `[1, C, H, W]` with `patch` pasted, cropped to `region` (inside the plane).
    static func crop(_ base: Tensor, _ patch: Patch, _ region: Region) -> Tensor {
        let (c, h, w) = (base.shape[1], base.shape[2], base.shape[3])
        if region == .whole(h, w) && patch.region == region { return patch.values }
        let out = Tensor(uninitialized: [1, c, region.height, region.width])
        crop(base, patch, region, into: out.storage.pointer)
        return out
    }

    /// `crop` written to `out` (`C · region.height · region.width` floats).
    static func crop(_ base: Tensor, _ patch: Patch, _ region: Region, into out: UnsafeMutablePointer<Float>) {
        let (c, h, w) = (base.shape[1], base.shape[2], base.shape[3])
        copy(from: base.storage.pointer, height: h, width: w, origin: (0, 0), channels: c,
             to: out, height: region.height, width: region.width, origin: (region.y0, region.x0),
             rows: region.y0..<region.y1, columns: region.x0..<region.x1)
        let p = patch.region
        let rows = max(p.y0, region.y0)..<max(max(p.y0, region.y0), min(p.y1, region.y1))
        let columns = max(p.x0, region.x0)..<max(max(p.x0, region.x0), min(p.x1, region.x1))
        if !rows.isEmpty && !columns.isEmpty {
            copy(from: patch.values.storage.pointer, height: p.height, width: p.width, origin: (p.y0, p.x0), channels: c,
                 to: out, height: region.height, width: region.width, origin: (region.y0, region.x0),
                 rows: rows, columns: columns)
        }
    }

    /// Copies the plane rows × columns (absolute coordinates) of every channel between two
    /// tensors that cover different windows of the same plane.
    static func copy(from source: UnsafeMutablePointer<Float>, height sh: Int, width sw: Int, origin so: (Int, Int), channels: Int,
                     to destination: UnsafeMutablePointer<Float>, height dh: Int, width dw: Int, origin dOrigin: (Int, Int),
                     rows: Range<Int>, columns: Range<Int>) {
        let count = columns.count
        for channel in 0..<channels {
            let s = source + channel * sh * sw
            let d = destination + channel * dh * dw
            for y in rows {
                (d + (y - dOrigin.0) * dw + (columns.lowerBound - dOrigin.1))
                    .update(from: s + (y - so.0) * sw + (columns.lowerBound - so.1), count: count)
            }
        }
    }

    /// Runs one layer on `outputs[i]` (a region of its output plane) of the input `base`
    /// changed by `patches[i]`, for every i: crops of equal size are stacked and run through
    /// the layer together (`layer` takes a batch).
    func applyMany(_ layer: (Tensor) throws(ElucidateError) -> Tensor, _ g: Geometry, base: Tensor, patches: [Patch],
                   outputs: [Region]) throws(ElucidateError) -> [Patch] {
        let (h, w) = (base.shape[2], base.shape[3])
        // Crop rows [c0, c1): c0 a multiple of the stride so the crop's output grid lines up
        // with the layer's; the layer's own padding then applies only at the true border
        // (interior edges get padded outputs, which are discarded).
        func span(_ o0: Int, _ o1: Int, _ k: Int, _ s: Int, _ p: Int, _ size: Int) -> (Int, Int) {
            let start = max(0, o0 * s - p) / s * s
            return (start, min(size, (o1 - 1) * s - p + k))
        }
        let crops = outputs.map { output -> Region in
            let (cy0, cy1) = span(output.y0, output.y1, g.kernel.0, g.stride.0, g.padding.0, h)
            let (cx0, cx1) = span(output.x0, output.x1, g.kernel.1, g.stride.1, g.padding.1, w)
            return Region(y0: cy0, y1: cy1, x0: cx0, x1: cx1)
        }
        var groups: [[Int]: [Int]] = [:]
        for (index, crop) in crops.enumerated() { groups[[crop.height, crop.width], default: []].append(index) }
        var result = [Patch?](repeating: nil, count: patches.count)
        // The copies in and out are split over threads by member: on the partial layers they
        // are a good part of the work, and each member has rows of its own.
        func eachMember(_ count: Int, floats: Int, _ body: (Int) -> Void) {
            checkKernel(Runtime.parallel(maxShares: count, elements: floats) { ith, nth in
                for row in (count * Int(ith) / Int(nth))..<(count * Int(ith + 1) / Int(nth)) { body(row) }
                return EK_OK
            }, "incremental copies")
        }
        for (_, members) in groups.sorted(by: { $0.value[0] < $1.value[0] }) {
            let first = crops[members[0]]
            let stacked = Tensor(uninitialized: [members.count, base.shape[1], first.height, first.width])
            let inRow = base.shape[1] * first.height * first.width
            eachMember(members.count, floats: stacked.count) { row in
                Self.crop(base, patches[members[row]], crops[members[row]], into: stacked.storage.pointer + row * inRow)
            }
            let computed = try layer(stacked)
            let (channels, rh, rw) = (computed.shape[1], computed.shape[2], computed.shape[3])
            let values = members.map { Tensor(uninitialized: [1, channels, outputs[$0].height, outputs[$0].width]) }
            eachMember(members.count, floats: computed.count) { row in
                let (index, output) = (members[row], outputs[members[row]])
                let (oy, ox) = (crops[index].y0 / g.stride.0, crops[index].x0 / g.stride.1)
                Self.copy(from: computed.storage.pointer + row * channels * rh * rw, height: rh, width: rw, origin: (oy, ox),
                          channels: channels, to: values[row].storage.pointer, height: output.height, width: output.width,
                          origin: (output.y0, output.x0), rows: output.y0..<output.y1, columns: output.x0..<output.x1)
            }
            for (row, index) in members.enumerated() { result[index] = Patch(region: outputs[index], values: values[row]) }
        }
        return result.map { $0! }
    }

    func applyMany(_ conv: Conv2d, base: Tensor, patches: [Patch], outputs: [Region]? = nil,
                   outShape: [Int]) throws(ElucidateError) -> [Patch] {
        let g = Geometry(conv)
        let regions = outputs ?? patches.map { affected($0.region, g, outHeight: outShape[2], outWidth: outShape[3]) }
        return try applyMany({ (x: Tensor) throws(ElucidateError) -> Tensor in try conv.batched(x) }, g, base: base,
                             patches: patches, outputs: regions)
    }

    // MARK: - Evaluation

    /// The last block's outputs for the image changed by each of `patches` (patches of the
    /// input), in lockstep layer by layer. Copies whose change has spread over a whole plane
    /// join one batch that goes through the rest of the network together (one product per
    /// layer) and stays a batch: it is not split and re-joined at every block.
    func features(_ patches: [Patch]) throws(ElucidateError) -> Tensor {
        var current = try applyMany(network.stem, base: image, patches: patches, outShape: stemOutput.shape)
        if let pool = network.stemPool, let poolOutput {
            let g = Geometry(pool)
            let regions = current.map { affected($0.region, g, outHeight: poolOutput.shape[2], outWidth: poolOutput.shape[3]) }
            current = try applyMany({ (x: Tensor) throws(ElucidateError) -> Tensor in try pool(x) }, g, base: stemOutput,
                                    patches: current, outputs: regions)
        }
        var partial = Array(current.indices)  // copies still described by a region of their own
        var whole: Tensor?                     // the other copies, batched, in the order of `wholeIndices`
        var wholeIndices: [Int] = []
        for (block, activations) in blocks {
            let (h, w) = (activations.input.shape[2], activations.input.shape[3])
            let joining = partial.filter { current[$0].region == .whole(h, w) }
            if !joining.isEmpty {
                whole = Tensor.concatenatingRows((whole.map { [$0] } ?? []) + joining.map { current[$0].values })
                wholeIndices += joining
                partial.removeAll { current[$0].region == .whole(h, w) }
            }
            if let batch = whole { whole = try Self.batchedBlock(block, batch) }
            if !partial.isEmpty {
                let outputs = try self.blockMany(block, activations, partial.map { current[$0] })
                for (index, patch) in zip(partial, outputs) { current[index] = patch }
            }
        }
        let last = blocks.last?.1.output ?? poolOutput ?? stemOutput
        let rowSize = last.count
        let result = Tensor(uninitialized: [patches.count] + Array(last.shape.dropFirst()))
        if let whole {
            for (row, index) in wholeIndices.enumerated() {
                (result.storage.pointer + index * rowSize).update(from: whole.storage.pointer + row * rowSize, count: rowSize)
            }
        }
        for index in partial {
            let values = Self.crop(last, current[index], .whole(last.shape[2], last.shape[3]))
            (result.storage.pointer + index * rowSize).update(from: values.storage.pointer, count: rowSize)
        }
        return result
    }

    /// A residual block on a batch, with batched convolutions.
    static func batchedBlock(_ block: ResidualBlock, _ input: Tensor) throws(ElucidateError) -> Tensor {
        var x = input
        for conv in block.convolutions { x = try conv.batched(x) }
        var shortcut = input
        if let downsample = block.downsample { shortcut = try downsample.batched(input) }
        return x.adding(shortcut, activation: .relu)
    }

    /// `block` for many patches, layer by layer, with equal crops batched.
    func blockMany(_ block: ResidualBlock, _ activations: BlockActivations, _ inputs: [Patch]) throws(ElucidateError) -> [Patch] {
        var current = inputs
        var base = activations.input
        for (index, conv) in block.convolutions.dropLast().enumerated() {
            current = try applyMany(conv, base: base, patches: current, outShape: activations.intermediates[index].shape)
            base = activations.intermediates[index]
        }
        let outShape = activations.output.shape
        let last = block.convolutions.last!
        let regions = zip(current, inputs).map { (patch, input) -> Region in
            var region = affected(patch.region, Geometry(last), outHeight: outShape[2], outWidth: outShape[3])
            if let downsample = block.downsample {
                region = region.union(affected(input.region, Geometry(downsample), outHeight: outShape[2], outWidth: outShape[3]))
            } else {
                region = region.union(input.region)
            }
            return widened(region, height: outShape[2], width: outShape[3])
        }
        let mains = try applyMany(last, base: base, patches: current, outputs: regions, outShape: outShape)
        let shortcuts: [Tensor]
        if let downsample = block.downsample {
            shortcuts = try applyMany(downsample, base: activations.input, patches: inputs, outputs: regions, outShape: outShape).map(\.values)
        } else {
            shortcuts = zip(inputs, regions).map { Self.crop(activations.input, $0, $1) }
        }
        return zip(mains, shortcuts).map { Patch(region: $0.region, values: $0.values.adding($1, activation: .relu)) }
    }

    /// The target's logit for the unoccluded image, from the stored feature map through the
    /// head in double (`ClassifierHead.targetLogits64`): the same arithmetic as `scores`, so
    /// feature-map values a window leaves unchanged cancel exactly in the difference.
    func baseScore(target: Int) -> Double {
        network.head.targetLogits64(blocks.last?.1.output ?? poolOutput ?? stemOutput, target: target)[0]
    }

    /// The target's logit for the image with each box replaced by the baseline, the head
    /// evaluated in double from the float feature maps (see `baseScore`).
    func scores(boxes: [Occlusion.Box], baseline: Tensor, target: Int, perPass: Int,
                progress: (Int) -> Void) throws(ElucidateError) -> [Double] {
        let (h, w) = (image.shape[2], image.shape[3])
        var result: [Double] = []
        var start = 0
        while start < boxes.count {
            let end = min(boxes.count, start + max(1, perPass))
            var patches: [Patch] = []
            for box in boxes[start..<end] {
                let region = Region(y0: box.y0, y1: box.y1, x0: box.x0, x1: box.x1)
                let values = Self.crop(image, Patch(region: Region(y0: 0, y1: 0, x0: 0, x1: 0), values: image), region)
                let occluded = Patch(region: region, values: values)
                let channelSize = region.area
                for channel in box.c0..<box.c1 {
                    Self.copy(from: baseline.storage.pointer + channel * h * w, height: h, width: w, origin: (0, 0), channels: 1,
                              to: values.storage.pointer + channel * channelSize, height: region.height, width: region.width,
                              origin: (region.y0, region.x0), rows: region.y0..<region.y1, columns: region.x0..<region.x1)
                }
                patches.append(occluded)
            }
            result += network.head.targetLogits64(try features(patches), target: target)
            progress(end)
            start = end
        }
        return result
    }
}

extension Conv2d {
    /// The same convolution with one GEMM for several images: their im2col columns side by
    /// side ([rows, n·P]), so small planes still make a wide product. Large planes go
    /// through the ordinary per-image path.
    func batched(_ input: Tensor) throws(ElucidateError) -> Tensor {
        let outShape = try outputShape(for: input.shape)
        let (n, k) = (outShape[0], outShape[1])
        let outPlane = outShape[2] * outShape[3]
        let rows = inChannels * kernelSize.h * kernelSize.w
        let maximumColumns = 1 << 22
        try Runtime.ensureBLAS()
        if let output = winogradForward(input, outShape: outShape) { return output }
        if n == 1 || outPlane >= 1024 || rows * outPlane * 2 > maximumColumns { return try self(input) }
        let chunk = max(1, min(n, maximumColumns / (rows * outPlane)))
        var params = kernelParams(for: [1] + Array(input.shape.dropFirst()))
        let scratchCount = Int(ek_conv2d_scratch_size(&params))
        let scratch = scratchCount > 0 ? ScratchBuffer.shared.acquire(count: scratchCount) : nil
        defer { if let scratch { ScratchBuffer.shared.release(scratch) } }
        let columns = ScratchBuffer.shared.acquire(count: rows * outPlane * chunk)
        defer { ScratchBuffer.shared.release(columns) }
        let product = ScratchBuffer.shared.acquire(count: k * outPlane * chunk)
        defer { ScratchBuffer.shared.release(product) }
        let output = Tensor(uninitialized: outShape)
        let inImage = input.shape[1] * input.shape[2] * input.shape[3]
        let activation = self.activation
        let b = bias?.storage.pointer
        var first = 0
        while first < n {
            let count = min(chunk, n - first)
            let width = count * outPlane
            for image in 0..<count {
                let xImage = input.storage.pointer + (first + image) * inImage
                let source = columnMatrix(of: xImage, params: params, scratch: scratch)
                for row in 0..<rows {
                    (columns.pointer + row * width + image * outPlane).update(from: source + row * outPlane, count: outPlane)
                }
            }
            Runtime.gemm(m: k, n: width, k: rows, a: weight.storage.pointer, lda: rows, b: columns.pointer, ldb: width,
                         c: product.pointer, ldc: width)
            for image in 0..<count {
                let yImage = output.storage.pointer + (first + image) * k * outPlane
                for channel in 0..<k {
                    (yImage + channel * outPlane).update(from: product.pointer + channel * width + image * outPlane, count: outPlane)
                }
                if b != nil || activation != .identity {
                    checkKernel(Runtime.parallel(maxShares: k, elements: k * outPlane) { ith, nth in
                        ek_bias_act_f32(Int64(k), Int64(outPlane), b, activation.kernelValue, yImage, ith, nth)
                    }, "conv2d epilogue")
                }
            }
            first += count
        }
        return output
    }
}

extension ResNet {
    /// `logits` with batched convolutions (one GEMM per layer for the whole batch where
    /// planes are small): the same arithmetic, faster for many images.
    func batchedLogits(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try head(batchedFeatureMap(input))
    }

    /// `featureMap` with batched convolutions.
    func batchedFeatureMap(_ input: Tensor) throws(ElucidateError) -> Tensor {
        try validate(inputShape: input.shape)
        var x = try stem(input)
        if let stemPool { x = try stemPool(x) }
        for stage in stages {
            for block in stage { x = try IncrementalEvaluator.batchedBlock(block, x) }
        }
        return x
    }
}

extension ClassifierHead {
    /// The `target` logit of each row of a feature map `[N, C, H, W]`, the head evaluated in
    /// double from the float features (the head's parameters are the float ones, widened).
    ///
    /// For occlusion, whose attributions are differences F(x) − F(x′) of logits that are
    /// nearly equal: in float32, the pooling and the classifier round F(x) and F(x′) apart
    /// (and differently for a batch of one and a larger batch, as BLAS blocks them
    /// differently), an error of about 1e-7·|F| in every difference, however small. In double
    /// the head adds nothing that matters, and feature-map values a window leaves unchanged
    /// cancel exactly. Costs C·H·W + C multiply-adds per row (fastai's head: its hidden layer).
    func targetLogits64(_ features: Tensor, target: Int) -> [Double] {
        precondition(features.rank == 4 && features.shape[1] == inputChannels, "feature map \(features.shape)")
        let (rows, channels, plane) = (features.shape[0], features.shape[1], features.shape[2] * features.shape[3])
        var average = [Double](repeating: 0, count: channels)
        var maximum = [Double](repeating: 0, count: channels)
        var result: [Double] = []
        result.reserveCapacity(rows)
        for row in 0..<rows {
            let f = features.storage.pointer + row * channels * plane
            for c in 0..<channels {
                var sum = 0.0
                var largest = -Double.infinity
                for i in 0..<plane {
                    let v = Double(f[c * plane + i])
                    sum += v
                    largest = v > largest || v.isNaN ? v : largest
                }
                average[c] = sum / Double(plane)
                maximum[c] = largest
            }
            switch self {
            case .linear(let fc):
                let w = fc.weight.storage.pointer + target * channels
                var logit = fc.bias.map { Double($0.storage.pointer[target]) } ?? 0
                for c in 0..<channels { logit += Double(w[c]) * average[c] }
                result.append(logit)
            case .fastai(let head):
                result.append(head.targetLogit64(pooled: maximum + average, target: target))
            }
        }
        return result
    }
}

extension FastaiHead {
    /// The `target` logit from the concat-pooled features `[max…, average…]`, in double.
    func targetLogit64(pooled: [Double], target: Int) -> Double {
        func normalized(_ x: [Double], _ norm: BatchNorm2d) -> [Double] {
            x.indices.map { c in
                let scale = Double(norm.weight?.storage.pointer[c] ?? 1) / (Double(norm.runningVar.storage.pointer[c]) + Double(norm.eps)).squareRoot()
                return (x[c] - Double(norm.runningMean.storage.pointer[c])) * scale + Double(norm.bias?.storage.pointer[c] ?? 0)
            }
        }
        let x = normalized(pooled, firstNorm)
        let (inner, outer) = (hidden.inFeatures, hidden.outFeatures)
        var h = [Double](repeating: 0, count: outer)
        for j in 0..<outer {
            let w = hidden.weight.storage.pointer + j * inner
            var sum = 0.0
            for i in 0..<inner { sum += Double(w[i]) * x[i] }
            h[j] = max(sum, 0)
        }
        h = normalized(h, secondNorm)
        let w = output.weight.storage.pointer + target * outer
        var logit = 0.0
        for j in 0..<outer { logit += Double(w[j]) * h[j] }
        return logit
    }
}
