import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN
import Foundation

/// xoshiro256** seeded through SplitMix64: a fast generator whose stream depends only on
/// the seed, so every stochastic method is reproducible bit for bit under `--seed`.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)
    private var spareGaussian: Double?

    /// A generator whose whole stream is fixed by `seed`.
    public init(seed: UInt64) {
        var mix = seed
        func splitMix() -> UInt64 {
            mix &+= 0x9E37_79B9_7F4A_7C15
            var z = mix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// A seed from the system's entropy, for runs without `--seed`.
    public static func randomSeed() -> UInt64 { UInt64.random(in: .min ... .max) }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Standard normal (Box–Muller; the second value of each pair is kept for the next call).
    public mutating func nextGaussian() -> Double {
        if let spare = spareGaussian {
            spareGaussian = nil
            return spare
        }
        var u1 = nextUniform()
        while u1 <= .leastNormalMagnitude { u1 = nextUniform() }
        let u2 = nextUniform()
        let radius = (-2 * Foundation.log(u1)).squareRoot()
        spareGaussian = radius * Foundation.sin(2 * .pi * u2)
        return radius * Foundation.cos(2 * .pi * u2)
    }

    /// Advances the generator exactly as `count` calls of `nextGaussian()` would, without the
    /// logarithms and sines: a method that streams its draws uses it to reach the state that
    /// follows a block of noise it will draw later, so streaming keeps the numbers of drawing
    /// everything at once.
    public mutating func skipGaussians(_ count: Int) {
        var remaining = max(0, count)
        if remaining > 0, spareGaussian != nil {
            spareGaussian = nil
            remaining -= 1
        }
        // Each pair takes u1 > 0 (redrawn while `next() >> 11` is 0, as nextGaussian's
        // `u1 <= leastNormalMagnitude` does) and u2.
        for _ in 0..<(remaining / 2) {
            while next() >> 11 == 0 {}
            _ = next()
        }
        if remaining % 2 == 1 { _ = nextGaussian() }  // leaves the same spare
    }

    /// `tensor` plus Gaussian noise of standard deviation `stdev`.
    public mutating func addingNoise(to tensor: Tensor, stdev: Float) -> Tensor {
        var result = tensor
        guard stdev != 0 else { return result }
        result.withUnsafeMutableBufferPointer { values in
            for i in values.indices { values[i] += stdev * Float(nextGaussian()) }
        }
        return result
    }
}
