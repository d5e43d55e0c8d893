import Elucidate
import Foundation

/// Reproducible pseudo-random parameters and inputs, computed bit for bit the same by
/// `tools/golden.py` (numpy) and by Swift, so parity fixtures need not ship weights.
///
/// Element `i` (C order) of a tensor named `key`:
///   x = (fnv1a32(key) + i * 0x9E3779B9) mod 2^32
///   u = fmix32(x) / 2^31 - 1                    (exact in float64, in [-1, 1))
///   value = Float(scale * u)                    (float64 product, rounded once)
/// Integer arithmetic only, then one correctly rounded multiply: no libm differences.
public enum DeterministicWeights {
    public static func fnv1a32(_ key: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in key.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        return hash
    }

    @inline(__always)
    static func fmix32(_ value: UInt32) -> UInt32 {
        var h = value
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        h = h &* 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    /// `count` values of `scale * u` for the tensor named `key`, plus `offset`.
    public static func values(key: String, count: Int, scale: Double, offset: Double = 0) -> [Float] {
        let seed = fnv1a32(key)
        var result = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let x = seed &+ UInt32(truncatingIfNeeded: i) &* 0x9E37_79B9
            let u = Double(fmix32(x)) / 2_147_483_648.0 - 1.0
            result[i] = Float(offset + scale * u)
        }
        return result
    }

    /// A parameter of a PyTorch ResNet state dict, chosen by its key's last component:
    /// convolution weights He-uniform (scale √(6/fan_in)), linear weights √(3/fan_in),
    /// biases 0.1·u, batch-norm weight 1 + 0.2·u (0.3 + 0.06·u where it closes a residual
    /// branch), bias 0.1·u, running_mean 0.1·u, running_var 1 + 0.5·u.
    public static func parameter(key: String, shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
        let parts = key.split(separator: ".").map(String.init)
        let name = parts.last ?? key
        let scale: Double
        var offset = 0.0
        switch (name, shape.count) {
        case ("weight", 4): scale = (6.0 / Double(fanIn)).squareRoot()
        case ("weight", 2): scale = (3.0 / Double(fanIn)).squareRoot()
        case ("weight", 1) where closesResidualBranch(parts): scale = 0.06; offset = 0.3
        case ("weight", 1): scale = 0.2; offset = 1.0  // every 1-D weight of a ResNet is a batch norm's
        case ("running_var", _): scale = 0.5; offset = 1.0
        default: scale = 0.1
        }
        return Tensor(shape: shape, values: values(key: key, count: count, scale: scale, offset: offset))
    }

    /// Batch norms that end a residual branch (`bn2`, `bn3`, `downsample.1` inside `layerN`)
    /// get a gamma near 0.3, so activations stay of order one through deep stacks.
    private static func closesResidualBranch(_ parts: [String]) -> Bool {
        parts.count >= 3 && parts[0].hasPrefix("layer") && ["bn2", "bn3", "1"].contains(parts[parts.count - 2])
    }

    /// An input tensor in [-2, 2), the range of a normalised photo.
    public static func input(key: String = "input", shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: values(key: key, count: shape.reduce(1, *), scale: 2.0))
    }
}

extension DeterministicWeights {
    /// A complete state dict for `architecture`, every tensor from `parameter(key:shape:)`.
    /// With the fastai head, body tensors take the values of their torchvision names
    /// (`0.4.0.conv1.weight` = `layer1.0.conv1.weight`), head tensors their own keys'.
    public static func stateDict(_ architecture: ResNetArchitecture, classes: Int, inputChannels: Int = 3) -> StateDict {
        var tensors: [String: Tensor] = [:]
        let layout: ResNetKeyLayout = architecture.head == .fastai ? .fastai : .torchvision
        for (key, shape) in architecture.parameterShapes(classes: classes, inputChannels: inputChannels) {
            tensors[key] = parameter(key: layout.torchvisionName(key), shape: shape)
        }
        return StateDict(tensors)
    }
}
