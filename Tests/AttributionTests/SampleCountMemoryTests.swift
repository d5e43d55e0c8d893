import Elucidate
@testable import ElucidateAttribution
import Foundation
import TestSupport
import XCTest

/// Issue 11, items 2 and 3: a sample count is a promise of work, not of memory. The methods that
/// can stream (NoiseTunnel, GradientSHAP, Shapley value sampling) keep a bounded batch whatever
/// the count and give the numbers of one big batch bit for bit; KernelSHAP and LIME, which fit
/// a surrogate on every sample at once, refuse a count that would not fit before allocating,
/// saying how much it needs and how many samples fit.
final class SampleCountMemoryTests: XCTestCase {
    static let network = try! ResNet(stateDict: DeterministicWeights.stateDict(
        ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 5))
    let inputs = DeterministicWeights.input(shape: [2, 3, 12, 10])
    let targets = [1, 4]

    /// A model that fails the test if anything runs it: refusals must come first.
    struct UntouchableModel: AttributionModel {
        var classes: Int { 5 }
        func logits(_ input: Tensor) throws(ElucidateError) -> Tensor {
            XCTFail("the model ran before the sample count was refused")
            return Tensor(zeros: [input.shape[0], 5])
        }
        func logits(_ input: Variable, in graph: Graph) throws(ElucidateError) -> Variable {
            XCTFail("the model ran before the sample count was refused")
            throw ElucidateError(.internalFailure, "ran")
        }
    }

    private func assertSameBits(_ a: Attribution, _ b: Attribution, _ message: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.values.shape, b.values.shape, message, file: file, line: line)
        XCTAssertEqual(a.values.scalars.map(\.bitPattern), b.values.scalars.map(\.bitPattern), message, file: file, line: line)
        XCTAssertEqual(a.convergenceDelta?.map(\.bitPattern), b.convergenceDelta?.map(\.bitPattern), message, file: file, line: line)
    }

    // MARK: - Streaming methods: bounded batches, the same numbers

    func testSkippingGaussiansLeavesTheGeneratorWhereDrawingThemWould() {
        for start in 0..<2 {
            for count in 0..<6 {
                var drawn = SeededRandom(seed: 42)
                var skipped = SeededRandom(seed: 42)
                for _ in 0..<start {
                    _ = drawn.nextGaussian()
                    _ = skipped.nextGaussian()
                }
                for _ in 0..<count { _ = drawn.nextGaussian() }
                skipped.skipGaussians(count)
                XCTAssertEqual(drawn.nextGaussian(), skipped.nextGaussian(), "start \(start), count \(count)")
                XCTAssertEqual(drawn.next(), skipped.next(), "start \(start), count \(count)")
            }
        }
    }

    func testGradientSHAPStreamsItsDrawsWithTheNumbersOfOneBatch() throws {
        let baselines = DeterministicWeights.input(key: "b", shape: [3, 3, 12, 10])
        for method in [GradientSHAP(samples: 7, stdev: 0.3, batchSize: 2, seed: 12),
                       GradientSHAP(samples: 5, stdev: 0, baselines: .tensor(baselines), batchSize: 3, seed: 13)] {
            let whole = try method.attribute(Self.network, inputs: inputs, targets: targets)
            XCTAssertGreaterThanOrEqual(method.drawsPerBatch(rowSize: 360), 14, "the default takes every draw at once here")
            var streamed = method
            streamed.batchElements = 360 * method.batchSize  // one chunk of draws per batch
            XCTAssertEqual(streamed.drawsPerBatch(rowSize: 360), method.batchSize)
            assertSameBits(try streamed.attribute(Self.network, inputs: inputs, targets: targets), whole,
                           "GradientSHAP streamed \(method.batchSize) draws at a time")
        }
        // A billion samples of a 224×224 image: batches of 48 draws (five 29 MiB buffers).
        let huge = GradientSHAP(samples: 1_000_000_000, batchSize: 16, seed: 1)
        XCTAssertEqual(huge.drawsPerBatch(rowSize: 3 * 224 * 224), 48)
        XCTAssertEqual(huge.progressTotal(inputShape: [1, 3, 224, 224]), 62_500_000)
        XCTAssertEqual(GradientSHAP(samples: .max).progressTotal(inputShape: [2, 3, 224, 224]), Int.max / 16 + 1,
                       "an absurd count saturates instead of overflowing")
    }

    func testNoiseTunnelStreamsLargeCountsAndKeepsSmallOnesInOneBatch() throws {
        let small = NoiseTunnel(Saliency(), samples: 10, stdev: 0.1, seed: 3)
        XCTAssertEqual(small.copiesPerBatch(inputShape: [2, 3, 224, 224]), 10, "small counts: one batch, as before")
        let huge = NoiseTunnel(IntegratedGradients(), samples: 1_000_000_000, stdev: 0.1, seed: 3)
        XCTAssertEqual(huge.copiesPerBatch(inputShape: [1, 3, 224, 224]), (1 << 24) / (3 * 224 * 224))  // 111: 64 MiB
        XCTAssertEqual(huge.copiesPerBatch(inputShape: [1, 3, 28, 28]), (1 << 24) / (3 * 28 * 28))
        XCTAssertEqual(huge.copiesPerBatch(inputShape: [512, 3, 224, 224]), 1)
        var explicit = huge
        explicit.sampleBatchSize = 7
        XCTAssertEqual(explicit.copiesPerBatch(inputShape: [1, 3, 224, 224]), 7)
        // The total of a billion noisy copies is counted, not listed (50 path points per copy, 16 per pass):
        // 111 copies per batch: 9 009 009 batches of ⌈50 · 111 / 16⌉ = 347 passes, then 1 copy (4 passes).
        XCTAssertEqual(try huge.progressTotal(inputShape: [1, 3, 224, 224]), 9_009_009 * 347 + 4)

        // Streamed batches (the automatic rule, here forced by a sample batch size) give the
        // numbers of one batch for one input: the noise is drawn in the same order.
        let one = inputs.rows(0..<1)
        let tunnel = NoiseTunnel(Saliency(signed: true), kind: .vargrad, samples: 9, stdev: 0.2, seed: 4)
        var batched = tunnel
        batched.sampleBatchSize = 2
        assertSameBits(try batched.attribute(Self.network, inputs: one, targets: [3]),
                       try tunnel.attribute(Self.network, inputs: one, targets: [3]), "noise tunnel in batches of 2")
    }

    func testNoiseTunnelRefusesAnExplicitBatchThatDoesNotFit() throws {
        MemoryBudget.override = 1 << 20
        defer { MemoryBudget.override = nil }
        let tunnel = NoiseTunnel(Saliency(), samples: 1_000_000_000, stdev: 0.1, sampleBatchSize: 1_000_000_000, seed: 1)
        XCTAssertThrowsError(try tunnel.attribute(UntouchableModel(), inputs: inputs, targets: targets)) { error in
            let message = (error as? ElucidateError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("would need 2.6 TiB") && message.contains("at most 364 copies fit"), message)
        }
    }

    func testShapleyValueSamplingStreamsItsOrdersWithTheNumbersOfOneBatch() throws {
        let grid = try FeatureMask.grid(3, height: 12, width: 10)
        let method = ShapleyValueSampling(mask: grid, samples: 7, perturbationsPerEval: 6, seed: 3)
        XCTAssertGreaterThanOrEqual(method.permutationsPerChunk(features: 9), 7, "the default scores every order at once here")
        var streamed = method
        streamed.chunkEvaluations = 1
        // 6 copies per pass, 9 features: chunks of 2 orders (18 copies, three whole passes).
        XCTAssertEqual(streamed.permutationsPerChunk(features: 9), 2)
        assertSameBits(try streamed.attribute(Self.network, inputs: inputs, targets: targets),
                       try method.attribute(Self.network, inputs: inputs, targets: targets), "Shapley in chunks of 2 orders")
        // A billion orders of 64 features: chunks of 1024 orders (65 536 copies), not a billion.
        let huge = ShapleyValueSampling(mask: grid, samples: 1_000_000_000, seed: 1)
        XCTAssertEqual(huge.permutationsPerChunk(features: 64), 1024)
        XCTAssertEqual(huge.permutationsPerChunk(features: 224 * 224), 1)
        XCTAssertEqual(try huge.progressTotal(inputShape: [2, 3, 12, 10]), 18_000_000_000)
    }

    // MARK: - Surrogate methods: the memory is computed and refused before allocating

    func testKernelSHAPAndLIMERefuseCountsThatDoNotFitBeforeAllocating() throws {
        let grid = try FeatureMask.grid(4, height: 12, width: 10)  // 16 features
        MemoryBudget.override = 64 << 20
        defer { MemoryBudget.override = nil }
        let most = SurrogateMemory.maximumSamples(features: 16, budget: 64 << 20, leastSquares: true)
        XCTAssertEqual(most, ((64 << 20) - (16 * (16 * 16 + 512) + (1 << 20))) / (17 * 16 + 48))
        XCTAssertLessThanOrEqual(SurrogateMemory.bytes(samples: most, features: 16)!, 64 << 20)
        XCTAssertGreaterThan(SurrogateMemory.bytes(samples: most + 1, features: 16)!, 64 << 20)

        let methods: [(String, any FeatureMaskAttributionMethod)] = [
            ("Kernel SHAP", KernelSHAP(mask: grid, samples: 1_000_000_000, seed: 1)),
            ("LIME", LIME(mask: grid, samples: 1_000_000_000, seed: 1)),
            ("LIME", LIME(mask: grid, samples: 1_000_000_000, surrogate: .leastSquares, seed: 1)),
        ]
        for (name, method) in methods {
            XCTAssertThrowsError(try method.attribute(UntouchableModel(), inputs: inputs, targets: targets)) { error in
                XCTAssertEqual((error as? ElucidateError)?.kind, .invalidArgument)
                XCTAssertEqual((error as? ElucidateError)?.message,
                               "\(name) with 1000000000 samples of 16 features needs about 298.0 GiB for its surrogate fit "
                               + "(every sample × feature at once), more than the memory budget of 64.0 MiB (set by the program); "
                               + "at most \(most) samples fit")
            }
        }
        XCTAssertEqual(try KernelSHAP(mask: grid, samples: 1_000_000_000, seed: 1).requiredMemory(inputShape: inputs.shape),
                       SurrogateMemory.bytes(samples: 1_000_000_000, features: 16))
        // The most that fits passes the check; one more does not.
        XCTAssertNoThrow(try KernelSHAP(mask: grid, samples: most, seed: 1).checkMemory(inputShape: inputs.shape))
        XCTAssertThrowsError(try KernelSHAP(mask: grid, samples: most + 1, seed: 1).checkMemory(inputShape: inputs.shape))
    }

    func testSurrogateCountsBeyondCountingOrLAPACKAreRefused() throws {
        let grid = try FeatureMask.grid(4, height: 12, width: 10)
        MemoryBudget.override = 1 << 50
        defer { MemoryBudget.override = nil }
        XCTAssertNil(SurrogateMemory.bytes(samples: .max, features: 16))
        XCTAssertThrowsError(try LIME(mask: grid, samples: .max, seed: 1).checkMemory(inputShape: inputs.shape)) { error in
            XCTAssertTrue("\(error)".contains("needs more memory than can be counted"), "\(error)")
        }
        // 2³¹ coalitions of 16 features fit a petabyte but not LAPACK's 32-bit indices; the Lasso has no such limit.
        XCTAssertThrowsError(try KernelSHAP(mask: grid, samples: 1 << 28, seed: 1).checkMemory(inputShape: inputs.shape)) { error in
            XCTAssertTrue("\(error)".contains("LAPACK's 32-bit indices limit samples × features to 2147483647; "
                                              + "at most 134217727 samples fit"), "\(error)")
        }
        XCTAssertNoThrow(try LIME(mask: grid, samples: 1 << 28, seed: 1).checkMemory(inputShape: inputs.shape))
    }

    func testMemoryBudgetSizes() throws {
        XCTAssertEqual(MemoryBudget.parseSize("8G"), 8 << 30)
        XCTAssertEqual(MemoryBudget.parseSize("512m"), 512 << 20)
        XCTAssertEqual(MemoryBudget.parseSize("1.5GiB"), 3 << 29)
        XCTAssertEqual(MemoryBudget.parseSize("1000000"), 1_000_000)
        for bad in ["", "G", "-1G", "lots", "1e40", "nan", "8 X"] { XCTAssertNil(MemoryBudget.parseSize(bad), bad) }
        let (bytes, origin) = try MemoryBudget.current()
        XCTAssertGreaterThan(bytes, 0)
        XCTAssertFalse(origin.isEmpty)
    }
}
