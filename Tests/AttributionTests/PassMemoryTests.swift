import Elucidate
import TestSupport
import XCTest

/// Absurd batch sizes and step counts are errors before any memory is reserved or any
/// endless work starts.
final class PassMemoryTests: XCTestCase {
    override func tearDown() { MemoryBudget.override = nil }

    func network() throws -> ResNet {
        try ResNet(stateDict: DeterministicWeights.stateDict(ResNetArchitecture(block: .basic, blocksPerStage: [1, 1, 1, 1]),
                                                             classes: 3))
    }

    /// A pass beyond the budget names the option to lower and how many fit; within it runs.
    func testPassesBeyondTheBudgetAreRefusedNamingTheOption() throws {
        let model = try network()
        let inputs = DeterministicWeights.input(shape: [1, 3, 32, 32])
        MemoryBudget.override = 16 << 20
        let methods: [(String, any AttributionMethod)] = [
            ("--internal-batch-size", IntegratedGradients(steps: 100_000 / 100, quadrature: .riemannTrapezoid,
                                                          internalBatchSize: 1_000)),
            ("--internal-batch-size", LayerIntegratedGradients(layer: LayerChoice("layer2"), steps: 1_000,
                                                               quadrature: .riemannTrapezoid, internalBatchSize: 1_000)),
            ("--batch-size", ScoreCAM(layer: LayerChoice("layer4"), batchSize: 1_000_000)),
            ("--perturbations-per-eval", Occlusion(window: [3, 4, 4], stride: [3, 1, 1], perturbationsPerEval: 100_000)),
        ]
        for (option, method) in methods {
            XCTAssertThrowsError(try method.attribute(model, inputs: inputs, targets: [1]), option) { error in
                let message = (error as? ElucidateError)?.message ?? "\(error)"
                XCTAssertTrue(message.contains(option) && message.contains("memory budget") && message.contains("at most"),
                              message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
        MemoryBudget.override = nil
        XCTAssertNoThrow(try IntegratedGradients(steps: 8, internalBatchSize: 1_000_000).attribute(model, inputs: inputs, targets: [1]))
    }

    /// Step counts no integral needs are refused before the nodes are computed.
    func testAbsurdStepCountsAreRefused() throws {
        let model = try network()
        let inputs = DeterministicWeights.input(shape: [1, 3, 32, 32])
        for method in [IntegratedGradients(steps: 100_000_000) as any AttributionMethod,
                       LayerConductance(layer: LayerChoice("layer1"), steps: 100_000_000),
                       IntegratedGradients(steps: 2_000_000, quadrature: .riemannLeft)] {
            XCTAssertThrowsError(try method.attribute(model, inputs: inputs, targets: [1])) { error in
                XCTAssertTrue(((error as? ElucidateError)?.message ?? "").contains("takes at most"), "\(error)")
            }
        }
    }
}
