import ArgumentParser
import Elucidate
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the compute setup: SIMD level, threads, and which OpenBLAS kernels and LAPACKE are in use.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        let blas = Runtime.blas
        let lapack = Runtime.lapack
        let isa = Runtime.instructionSetChoice
        if json {
            struct Report: Encodable {
                let instructionSet: String
                let instructionSetDetected: String
                let instructionSetOrigin: String
                let instructionSetEnvironment: String?
                let instructionSetProblem: String?
                let threads: Int
                let blasLoaded: Bool
                let blasLibrary: String?
                let blasCore: String?
                let openblasCoretype: String?
                let coretypeSetByElucidate: Bool
                let lapackeLoaded: Bool
                let lapackeLibrary: String?
                let lapackLibrary: String?
            }
            try StandardOutput.write(try JSONOutput.string(Report(
                instructionSet: isa.level.name, instructionSetDetected: isa.detected.name,
                instructionSetOrigin: "\(isa.origin)", instructionSetEnvironment: isa.environmentValue,
                instructionSetProblem: isa.environmentProblem, threads: Runtime.threadCount,
                blasLoaded: blas.loaded, blasLibrary: blas.library, blasCore: blas.coreName,
                openblasCoretype: blas.coretypeEnvironment, coretypeSetByElucidate: blas.coretypeSetByElucidate,
                lapackeLoaded: lapack.loaded, lapackeLibrary: lapack.library, lapackLibrary: lapack.lapackLibrary)) + "\n")
            return
        }
        var text = ""
        text.line("SIMD kernels:      \(isa.summary)")
        text.line("threads:           \(Runtime.threadCount)")
        if blas.loaded {
            text.line("OpenBLAS:          \(blas.library ?? "?"), core \(blas.coreName ?? "unknown")")
            let origin = blas.coretypeSetByElucidate ? "set by Elucidate" : "set by the user"
            text.line("OPENBLAS_CORETYPE: \(blas.coretypeEnvironment.map { "\($0) (\(origin))" } ?? "unset (OpenBLAS detects the CPU)")")
        } else {
            text.line("OpenBLAS:          not loaded: \(blas.error ?? "unknown reason")")
        }
        if lapack.loaded {
            text.line("LAPACKE:           \(lapack.library ?? "?"), LAPACK from \(lapack.lapackLibrary ?? "unknown")")
        } else {
            text.line("LAPACKE:           not loaded (Kernel SHAP and LIME's least-squares surrogate need it): \(lapack.error ?? "unknown reason")")
        }
        try StandardOutput.write(text)
    }
}

extension String {
    /// Appends `line` and a newline (a report built whole, then written with `StandardOutput`).
    mutating func line(_ line: String) { self += line + "\n" }
}
