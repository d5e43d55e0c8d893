import Elucidate
import TestSupport
import XCTest

final class NoiseTunnelTests: XCTestCase {
    /// A per-input baseline batch must be repeated with the inputs inside the tunnel: with
    /// stdev 0 every noisy copy is the input itself, so the tunnel equals the method.
    func testPerInputBaselinesAreRepeatedWithTheInputs() throws {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 3))
        let inputs = DeterministicWeights.input(shape: [2, 3, 16, 12])
        let baselines = DeterministicWeights.input(key: "baselines", shape: [2, 3, 16, 12])
        func check(_ method: some AttributionMethod) throws {
            let plain = try method.attribute(network, inputs: inputs, targets: [0, 2])
            let tunnel = try NoiseTunnel(method, samples: 3, stdev: 0, seed: 1).attribute(network, inputs: inputs, targets: [0, 2])
            assertClose(tunnel.values, plain.values, rtol: 1e-4, atol: 1e-7)
        }
        try check(IntegratedGradients(steps: 4, baseline: .tensor(baselines)))
        try check(DeepLift(baseline: .tensor(baselines)))
        // Per-input masks (one row per input, different group counts) repeat like baselines.
        let perInput = try FeatureMask(shape: [2, 1, 16, 12], ids: try FeatureMask.grid(2, height: 16, width: 12).ids
                                       + FeatureMask.grid(3, height: 16, width: 12).ids)
        try check(FeatureAblation(mask: perInput, baseline: .tensor(baselines)))
    }

    func testMaskRowsRepeatLikeInputRows() throws {
        let mask = try FeatureMask(shape: [2, 1, 1, 2], ids: [0, 1, 1, 0])
        let repeated = mask.repeatingRows(3)
        XCTAssertEqual(repeated.shape, [6, 1, 1, 2])
        XCTAssertEqual(repeated.ids, [0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0])
        let shared = try FeatureMask(shape: [1, 1, 2], ids: [0, 1])
        XCTAssertEqual(shared.repeatingRows(3), shared)
    }
}
