import Foundation

/// The result of running a built product of this package.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// The folder holding the built products (`.build/debug`), found from the test bundle.
public var productsDirectory: URL {
    var url = Bundle.main.bundleURL
    for _ in 0..<4 {
        if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("elucidate").path) { return url }
        url.deleteLastPathComponent()
    }
    // Fall back to the package's default build folder.
    return packageRootURL.appendingPathComponent(".build/debug")
}

/// Runs `elucidate` with `arguments`, capturing both streams; never reads stdin.
/// `environment` adds or replaces variables; `unsetting` removes them.
public func runElucidate(_ arguments: [String], environment: [String: String] = [:], unsetting: [String] = [],
                         currentDirectory: URL? = nil) throws -> CommandResult {
    try runProgram(productsDirectory.appendingPathComponent("elucidate"), arguments, environment: environment,
                   unsetting: unsetting, currentDirectory: currentDirectory)
}

/// Runs the program at `executable` with `arguments`, capturing both streams; never reads
/// stdin. `environment` adds or replaces variables; `unsetting` removes them.
public func runProgram(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                       unsetting: [String] = [], currentDirectory: URL? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var childEnvironment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    for name in unsetting { childEnvironment[name] = nil }
    process.environment = childEnvironment
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    process.waitUntilExit()
    group.wait()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}
