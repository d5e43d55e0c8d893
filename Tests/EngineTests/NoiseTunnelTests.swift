import Engine
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
    }
}
