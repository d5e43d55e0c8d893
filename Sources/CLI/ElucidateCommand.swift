import ArgumentParser
import Elucidate
import Foundation

/// The `elucidate` command (named so it does not shadow the module `Elucidate`).
@main
struct ElucidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elucidate",
        abstract: "Explain why an image classifier made its prediction — natively, on the CPU.",
        version: "0.1.0",
        subcommands: [Predict.self, Explain.self, Evaluate.self, Visualize.self, IndexCommand.self, Info.self, Models.self]
    )

    /// Runs the command line. Every failure ends as one line on stderr and a non-zero exit.
    static func main() {
        do {
            var command = try parseAllowingNegativeValues(Array(CommandLine.arguments.dropFirst()))
            // A mistyped or impossible ELUCIDATE_ISA is refused rather than silently run at
            // another level; `info` runs anyway and shows what went wrong.
            if !(command is Info), let problem = Runtime.instructionSetChoice.environmentProblem {
                fail(problem, code: 2)
            }
            try command.run()
        } catch let error as ElucidateError {
            fail(error.description, code: 1)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version: the full text on stdout, exit 0 — or an error if it cannot be written.
                do { try StandardOutput.write(fullMessage(for: error) + "\n") } catch { fail(error.description, code: 1) }
                Foundation.exit(0)
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            fail("\(message) (see 'elucidate help')", code: code.rawValue)
        }
    }

    /// Parses `arguments`, taking a negative number after an option as its value:
    /// ArgumentParser reads `--target -1` as the option `--target` without a value followed
    /// by an option `-1`, and says "Missing value", where `--target=-1` gets the option's
    /// own message (a value ≥ 0). So when parsing fails and some option is followed by a
    /// negative number, the two are joined (`--target=-1`) and parsed again; arguments that
    /// parse as they are, and everything after `--`, are never rewritten.
    static func parseAllowingNegativeValues(_ arguments: [String]) throws -> ParsableCommand {
        do {
            return try parseAsRoot(arguments)
        } catch {
            let joined = joiningNegativeValues(arguments)
            guard joined != arguments else { throw error }
            return try parseAsRoot(joined)
        }
    }

    /// `arguments` with every `--option NEGATIVE-NUMBER` pair (up to a `--`) written `--option=NEGATIVE-NUMBER`.
    static func joiningNegativeValues(_ arguments: [String]) -> [String] {
        func isNegativeNumber(_ text: String) -> Bool {
            // -1, -0.5, -.5, -1e-3, and lists such as -1,2,3
            guard text.hasPrefix("-"), let next = text.dropFirst().first else { return false }
            return next.isNumber || (next == "." && text.dropFirst(2).first?.isNumber == true)
        }
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            if argument.hasPrefix("--"), argument.count > 2, !argument.contains("="),
               index + 1 < arguments.count, isNegativeNumber(arguments[index + 1]) {
                result.append("\(argument)=\(arguments[index + 1])")
                index += 2
            } else {
                result.append(argument)
                index += 1
            }
        }
        return result
    }

    /// Prints `elucidate: MESSAGE` on stderr, with any control character in it (from a file's
    /// name, a tensor name, a label) escaped so that it cannot act on the terminal, and exits.
    static func fail(_ message: String, code: Int32) -> Never {
        StandardError.write("elucidate: \(TerminalText.escaped(message))\n")
        Foundation.exit(code == 0 ? 1 : code)
    }
}
