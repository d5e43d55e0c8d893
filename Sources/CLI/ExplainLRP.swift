import ArgumentParser
import Elucidate
import Foundation

// `elucidate explain lrp`: layer-wise relevance propagation with Zennit's composites (issue 13).
// Options left unset take the library's defaults (Zennit's), so only the given ones are passed.

struct ExplainLRP: MethodSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "lrp",
        abstract: "Layer-wise relevance propagation with Zennit's composites (torchvision-layout ResNets).")
    static let method = ExplainMethod.lrp
    @OptionGroup var common: ExplainOptions
    @Option(name: .long, help: "epsilon-plus-flat (default), epsilon-gamma-box, epsilon-alpha2-beta1 or epsilon-plus.")
    var composite: String?
    @Option(name: .long, help: "The Epsilon rule's epsilon on fc (default 1e-6).")
    var epsilon: Double?
    @Option(name: .long, help: "The Gamma rule's gamma (epsilon-gamma-box; default 0.25).")
    var gamma: Double?
    @Option(name: .long, help: "The other rules' stabilizer (default 1e-6).")
    var stabilizer: Double?
    @Option(name: .long, parsing: .unconditional,
            help: "ZBox's lowest input value, one or per channel 'a,b,c' (default: 0 pixels after the preset's normalisation).")
    var low: String?
    @Option(name: .long, parsing: .unconditional,
            help: "ZBox's highest input value, one or per channel 'a,b,c' (default: 1 pixels after the preset's normalisation).")
    var high: String?
    @Option(name: .customLong("internal-batch-size"), help: "Inputs per pass.")
    var internalBatchSize: Int = 8

    var options: Options {
        var values: [String: OptionValue] = ["internal-batch-size": .number(Double(internalBatchSize))]
        if let composite { values["composite"] = .string(composite) }
        if let epsilon { values["epsilon"] = .number(epsilon) }
        if let gamma { values["gamma"] = .number(gamma) }
        if let stabilizer { values["stabilizer"] = .number(stabilizer) }
        if let low { values["low"] = .string(low) }
        if let high { values["high"] = .string(high) }
        return Options(values)
    }
}
