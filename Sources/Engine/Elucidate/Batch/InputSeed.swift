/// The seed of one input in a batch run: derived from the run's seed and the input's relative
/// path (`BatchInput.relativePath`), never from its position, its batch or its shard — so a
/// random method (GradientSHAP, a noise tunnel, LIME, KernelSHAP, Shapley value sampling…)
/// gives an input the same attributions in a single run, a sharded one and a resumed one.
///
/// seed_input = splitmix64(seed ⊕ FNV-1a-64(UTF-8 of the relative path)).
public enum InputSeed {
    /// The seed for the input at `relativePath` in a run seeded with `seed`.
    public static func seed(_ seed: UInt64, relativePath: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in relativePath.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        var z = seed ^ hash
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
