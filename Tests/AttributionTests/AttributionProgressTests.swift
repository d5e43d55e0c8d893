import Elucidate
import Foundation
import TestSupport
import XCTest

/// The `progress` callback of the attribution methods: it counts what the doc comments say,
/// rises to its total, and never changes the attributions.
final class AttributionProgressTests: XCTestCase {
    static let network = try! ResNet(stateDict: DeterministicWeights.stateDict(
        ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 5))
    let inputs = DeterministicWeights.input(shape: [2, 3, 16, 16])
    let targets = [1, 4]

    /// Everything a callback heard, in order (it may be called from any thread).
    final class Recorder: @unchecked Sendable {
        private let lock = NSLock()
        private var heard: [(done: Int, total: Int)] = []
        var events: [(done: Int, total: Int)] { lock.withLock { heard } }
        var progress: AttributionProgress { { done, total in self.lock.withLock { self.heard.append((done, total)) } } }
    }

    /// Runs `method` without and with a callback: its `progressTotal` is `total`, the callback
    /// hears `done` rise strictly to `total` against that total every time (and, for `passes`,
    /// once per pass), and the attributions are the same bit for bit. Returns what it heard.
    @discardableResult
    private func check<Method: AttributionMethod>(_ method: Method, total: Int, everyPass: Bool = true,
                                                  file: StaticString = #filePath, line: UInt = #line) throws -> Recorder {
        XCTAssertNil(method.progress, file: file, line: line)
        XCTAssertEqual(try method.progressTotal(inputShape: inputs.shape), total, "progressTotal", file: file, line: line)
        let plain = try method.attribute(Self.network, inputs: inputs, targets: targets)
        let recorder = Recorder()
        var reporting = method
        reporting.progress = recorder.progress
        let heard = try reporting.attribute(Self.network, inputs: inputs, targets: targets)

        XCTAssertEqual(heard.values.shape, plain.values.shape, file: file, line: line)
        XCTAssertEqual(heard.values.scalars.map(\.bitPattern), plain.values.scalars.map(\.bitPattern),
                       "attributions differ with a progress callback", file: file, line: line)
        XCTAssertEqual(heard.convergenceDelta?.map(\.bitPattern), plain.convergenceDelta?.map(\.bitPattern), file: file, line: line)

        let events = recorder.events
        XCTAssertEqual(events.last?.done, total, "ends at done == total", file: file, line: line)
        XCTAssertTrue(events.allSatisfy { $0.total == total }, "one total: \(events)", file: file, line: line)
        XCTAssertTrue(zip(events, events.dropFirst()).allSatisfy { $0.done < $1.done }, "monotone: \(events)", file: file, line: line)
        XCTAssertGreaterThan(events.first?.done ?? 0, 0, file: file, line: line)
        if everyPass { XCTAssertEqual(events.map(\.done), Array(1...total), "one call per pass", file: file, line: line) }
        return recorder
    }

    func testIntegratedGradientsCountsPassesOverEveryPathPoint() throws {
        // 7 steps × 2 inputs = 14 path points, 4 per pass: ⌈14 / 4⌉ = 4 passes.
        try check(IntegratedGradients(steps: 7, internalBatchSize: 4), total: 4)
        try check(IntegratedGradients(steps: 3, quadrature: .riemannTrapezoid, internalBatchSize: 16), total: 1)
    }

    func testNoiseTunnelSumsItsMethodOverEveryNoisyBatch() throws {
        // 3 noisy copies in batches of 2 and 1: IG on 4 rows (5 · 4 = 20 points, ⌈20 / 3⌉ = 7
        // passes), then on 2 rows (10 points, 4 passes).
        let inner = Recorder()
        let ig = IntegratedGradients(steps: 5, internalBatchSize: 3, progress: inner.progress)
        var tunnel = NoiseTunnel(ig, kind: .smoothgradSquared, samples: 3, stdev: 0.2, sampleBatchSize: 2, seed: 7)
        tunnel.method.progress = nil
        try check(tunnel, total: 11)
        // With the tunnel's own callback, the method's is replaced (not called with partial totals).
        tunnel.method.progress = inner.progress
        tunnel.progress = Recorder().progress
        _ = try tunnel.attribute(Self.network, inputs: inputs, targets: targets)
        XCTAssertTrue(inner.events.isEmpty, "the wrapped method's own callback heard \(inner.events)")
        // All copies at once: one IG call on 6 rows, 30 points, ⌈30 / 3⌉ = 10 passes.
        try check(NoiseTunnel(IntegratedGradients(steps: 5, internalBatchSize: 3), samples: 3, stdev: 0.2, seed: 7), total: 10)
    }

    func testGradientSHAPCountsPassesOverItsDraws() throws {
        // 5 draws × 2 inputs, 4 per pass: 3 passes.
        try check(GradientSHAP(samples: 5, stdev: 0.1, batchSize: 4, seed: 3), total: 3)
    }

    func testSinglePassMethodsCountTheirPasses() throws {
        try check(Saliency(batchSize: 16), total: 1)
        try check(Saliency(signed: true, batchSize: 1), total: 2)
        try check(InputXGradient(batchSize: 1), total: 2)
        try check(ModifiedGradient(.guidedBackprop), total: 1)
        try check(ModifiedGradient(.deconvolution, batchSize: 1), total: 2)
        try check(DeepLift(baseline: .constant(0.1), batchSize: 1), total: 2)
        // 2 inputs × 3 baselines = 6 pairs, 4 per pass.
        try check(DeepLiftSHAP(baselines: DeterministicWeights.input(key: "baselines", shape: [3, 3, 16, 16]), batchSize: 4),
                  total: 2)
    }

    func testPerturbationMethodsCountCopiesAcrossRowsOfDifferentMasks() throws {
        // Per-input masks with 4 and 9 groups: 13 ablated copies, counted on from row to row.
        let mask = try FeatureMask(shape: [2, 1, 16, 16], ids: try FeatureMask.grid(2, height: 16, width: 16).ids
                                   + FeatureMask.grid(3, height: 16, width: 16).ids)
        try check(FeatureAblation(mask: mask, perturbationsPerEval: 5), total: 13, everyPass: false)
        try check(ShapleyValueSampling(mask: mask, samples: 2, perturbationsPerEval: 8, seed: 1), total: 26, everyPass: false)
        try check(KernelSHAP(mask: mask, samples: 6, seed: 1), total: 12, everyPass: false)
        try check(LIME(mask: mask, samples: 6, seed: 1), total: 12, everyPass: false)
        // 3 × 3 windows, stride 2, over 16 × 16: 8 × 8 positions per row (the last cropped).
        try check(Occlusion(window: [3, 3, 3], stride: [3, 2, 2], perturbationsPerEval: 16), total: 128, everyPass: false)
        // In a tunnel, each row's mask is repeated with its noisy copies: 2 × 13.
        try check(NoiseTunnel(FeatureAblation(mask: mask), samples: 2, stdev: 0.1, sampleBatchSize: 1, seed: 2),
                  total: 26, everyPass: false)
    }
}
