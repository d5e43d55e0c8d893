import ArgumentParser
import Elucidate

/// An `elucidate explain METHOD` subcommand whose only work is to hand its options to the
/// library by name: it checks them in `validate()` (a bad value is a usage error, before any
/// file is read) and runs them through `ExplainOptions.run`. The layer, neuron, CAM and LRP
/// subcommands declare only their options and `method`.
protocol MethodSubcommand: ParsableCommand {
    /// The method the subcommand runs.
    static var method: ExplainMethod { get }
    /// What every method shares: model, input, target, outputs, picture options.
    var common: ExplainOptions { get }
    /// The method's own options, by their command-line names.
    var options: Options { get }
}

extension MethodSubcommand {
    func validate() throws { try common.check(Self.method, options) }
    func run() throws { try common.run(Self.method, options) }
}
