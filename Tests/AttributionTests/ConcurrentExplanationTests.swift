import CKernels
import Dispatch
import Elucidate
import Foundation
import TestSupport
import XCTest

/// The concurrency contract (see `Runtime`, `Classifier`, `AttributionMethod`): one loaded
/// model shared by many threads gives, for every method, the same floats bit for bit as a
/// sequential run of that method.
///
/// Races are intermittent, so each concurrent round runs several times
/// (`ELUCIDATE_CONCURRENT_ROUNDS`, 3 by default), each time on a freshly loaded model so that
/// its lazily filled caches (the Winograd weights) are filled by several threads at once. The
/// model and inputs are large enough for products to be split over threads (`Runtime.gemm`),
/// for Winograd layers and the scratch pool to be used, while a debug build still runs a
/// round in a few seconds.
final class ConcurrentExplanationTests: XCTestCase {
    private struct Job: @unchecked Sendable {
        let name: String
        /// Every float of the result, as bits (NaN included).
        let run: () throws -> [UInt32]
    }

    private static var rounds: Int {
        ProcessInfo.processInfo.environment["ELUCIDATE_CONCURRENT_ROUNDS"].flatMap(Int.init) ?? 3
    }

    private static func deterministicClassifier() throws -> Classifier {
        let network = try ResNet(stateDict: DeterministicWeights.stateDict(
            ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]), classes: 5))
        return Classifier(network: network, source: URL(fileURLWithPath: "/deterministic-weights"))
    }

    /// Eight explanations by different methods of `model` on `[2, 3, size, size]` inputs, plus
    /// a weight gradient through the public `Graph` API, which used to raise OpenBLAS's
    /// process-wide thread count under the other callers' products.
    private static func jobs(_ model: Classifier, size: Int) throws -> [Job] {
        let inputs = DeterministicWeights.input(shape: [2, 3, size, size])
        let targets = [1, 3]
        let mask = try FeatureMask.grid(4, height: size, width: size)
        func explain(_ name: String, _ method: some AttributionMethod) -> Job {
            Job(name: name) {
                let attribution = try method.attribute(model, inputs: inputs, targets: targets)
                return attribution.values.scalars.map(\.bitPattern) + (attribution.convergenceDelta ?? []).map(\.bitPattern)
            }
        }
        let layer = Conv2d(weight: DeterministicWeights.parameter(key: "probe.weight", shape: [32, 16, 3, 3]),
                           bias: DeterministicWeights.parameter(key: "probe.bias", shape: [32]), padding: 1)
        let layerInput = DeterministicWeights.input(key: "probe.input", shape: [4, 16, 24, 24])
        let weightGradient = Job(name: "weight gradient (Graph)") {
            let graph = Graph()
            let x = graph.input(layerInput)
            let y = try graph.conv2d(x, layer, parameterName: "probe")
            let inputGradient = try graph.gradients(of: y, seed: Tensor(shape: y.shape, repeating: 1), for: [x])[0]
            return [inputGradient, graph.parameterGradients["probe.weight"]!, graph.parameterGradients["probe.bias"]!]
                .flatMap { $0.scalars.map(\.bitPattern) }
        }
        return [
            explain("saliency", Saliency()),
            explain("integrated gradients", IntegratedGradients(steps: 8, internalBatchSize: 8)),
            explain("input × gradient", InputXGradient()),
            explain("gradient SHAP", GradientSHAP(samples: 6, stdev: 0.1, batchSize: 6, seed: 11)),
            explain("occlusion", Occlusion(window: [3, 12, 12], stride: [3, 8, 8])),
            explain("feature ablation", FeatureAblation(mask: mask, perturbationsPerEval: 8)),
            explain("deeplift", DeepLift()),
            explain("noise tunnel (saliency)", NoiseTunnel(Saliency(signed: true), samples: 4, stdev: 0.2, seed: 5)),
            weightGradient,
        ]
    }

    func testConcurrentExplanationsOfOneModelMatchSequentialBitForBit() throws {
        try checkConcurrentMatchesSequential(size: 40, Self.deterministicClassifier)
    }

    func testConcurrentExplanationsOfTheBuiltinModelMatchSequentialBitForBit() throws {
        try checkConcurrentMatchesSequential(size: 28) { try BuiltinModels.load() }
    }

    /// The same through Swift concurrency (a task group), as an embedding program would.
    func testTaskGroupOfExplanationsMatchesSequentialBitForBit() async throws {
        let sequential = try Self.jobs(Self.deterministicClassifier(), size: 32).map { try $0.run() }
        let jobs = try Self.jobs(Self.deterministicClassifier(), size: 32)
        let concurrent = try await withThrowingTaskGroup(of: (Int, [UInt32]).self) { group in
            for (index, job) in jobs.enumerated() { group.addTask { (index, try job.run()) } }
            var results = [[UInt32]](repeating: [], count: jobs.count)
            for try await (index, bits) in group { results[index] = bits }
            return results
        }
        for (index, job) in jobs.enumerated() {
            Self.compare(concurrent[index], sequential[index], "\(job.name), task group")
        }
    }

    /// OpenBLAS's thread count is process-wide: the loader sets it to 1 once and nothing in the
    /// engine changes it afterwards — not `Runtime.setThreadCount`, not a weight gradient
    /// (which used to ask for every thread), not an inference layer.
    func testOpenBLASThreadCountIsConfiguredOnce() throws {
        XCTAssertTrue(Runtime.blas.loaded)
        try XCTSkipIf(ek_blas_get_num_threads() < 0, "this BLAS cannot report its thread count")
        XCTAssertEqual(ek_blas_get_num_threads(), 1)
        let before = Runtime.threadCount
        defer { Runtime.setThreadCount(before) }
        Runtime.setThreadCount(2)
        XCTAssertEqual(ek_blas_get_num_threads(), 1, "setThreadCount changed OpenBLAS's threads")
        for job in try Self.jobs(Self.deterministicClassifier(), size: 24) where job.name.hasPrefix("weight gradient") {
            _ = try job.run()
        }
        XCTAssertEqual(ek_blas_get_num_threads(), 1, "a weight gradient changed OpenBLAS's threads")
    }

    private func checkConcurrentMatchesSequential(size: Int, _ makeClassifier: () throws -> Classifier) throws {
        let sequential = try Self.jobs(makeClassifier(), size: size).map { try $0.run() }
        for round in 1...Self.rounds {
            let jobs = try Self.jobs(makeClassifier(), size: size)
            let results = Results(count: jobs.count)
            DispatchQueue.concurrentPerform(iterations: jobs.count) { index in
                results.set(index, Result { try jobs[index].run() })
            }
            for (index, job) in jobs.enumerated() {
                let concurrent = try XCTUnwrap(results.get(index), job.name).get()
                Self.compare(concurrent, sequential[index], "\(job.name), round \(round)")
            }
        }
    }

    private static func compare(_ concurrent: [UInt32], _ sequential: [UInt32], _ what: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(concurrent.count, sequential.count, what, file: file, line: line)
        let differing = zip(concurrent, sequential).filter { $0 != $1 }
        guard !differing.isEmpty else { return }
        let largest = differing.map { abs(Float(bitPattern: $0) - Float(bitPattern: $1)) }.max() ?? 0
        XCTFail("\(what): \(differing.count) of \(concurrent.count) floats differ from the sequential run "
                + "(largest difference \(largest))", file: file, line: line)
    }
}

/// One slot per concurrent job, written under a lock.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[UInt32], any Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Result<[UInt32], any Error>) {
        lock.lock(); slots[index] = value; lock.unlock()
    }
    func get(_ index: Int) -> Result<[UInt32], any Error>? {
        lock.lock(); defer { lock.unlock() }; return slots[index]
    }
}
