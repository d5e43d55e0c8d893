import ArgumentParser
import Engine
import Foundation

@main
struct Elucidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elucidate",
        abstract: "Explain why an image classifier made its prediction — natively, on the CPU.",
        version: "0.1.0",
        subcommands: [Predict.self, Explain.self, Visualize.self, Info.self, Models.self]
    )

    /// Runs the command line. Every failure ends as one line on stderr and a non-zero exit.
    static func main() {
        do {
            var command = try parseAsRoot()
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
                exit(withError: error)  // --help, --version: the full text, exit 0
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            fail("\(message) (see 'elucidate help')", code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("elucidate: \(message)\n".utf8))
        Foundation.exit(code == 0 ? 1 : code)
    }
}
