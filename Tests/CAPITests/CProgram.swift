import Elucidate
import Foundation
import TestSupport
import XCTest

/// The C API as a C program sees it: programs compiled with `cc` against
/// Sources/CAPI/include/elucidate.h and the built libElucidateC.so (the library
/// tools/install.sh installs as libelucidate.so) into the test's folder, then run.
extension TemporaryFolderTestCase {
    private var library: URL { productsDirectory.appendingPathComponent("libElucidateC.so") }

    /// Compiles `examples/c/NAME.c` (or `source`) into the test's folder; the program's path.
    func compile(_ name: String, source: URL? = nil) throws -> String {
        guard FileManager.default.fileExists(atPath: library.path) else {
            XCTFail("\(library.path) is missing: build with `swift build --build-tests` (it builds every product)")
            throw XCTSkip("no libElucidateC.so")
        }
        let output = path(name)
        let result = try run("/usr/bin/env", ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1",
                                              (source ?? packageRootURL.appendingPathComponent("examples/c/\(name).c")).path,
                                              "-I", packageRootURL.appendingPathComponent("Sources/CAPI/include").path,
                                              "-L", productsDirectory.path, "-lElucidateC",
                                              "-Wl,-rpath," + productsDirectory.path, "-pthread", "-lm", "-o", output])
        XCTAssertEqual(result.status, 0, "cc failed: \(result.stderr)")
        return output
    }

    /// Compiles Tests/CAPITests/Programs/NAME.c.
    func compileTestProgram(_ name: String) throws -> String {
        try compile(name, source: packageRootURL.appendingPathComponent("Tests/CAPITests/Programs/\(name).c"))
    }

    func run(_ executable: String, _ arguments: [String]) throws -> CommandResult {
        try runProgram(URL(fileURLWithPath: executable), arguments)
    }

    /// Writes `tensor`'s floats raw (little-endian float32, C order) to `name`; its path.
    func writeRaw(_ tensor: Tensor, _ name: String) throws -> String {
        try tensor.withUnsafeBufferPointer { try Data(buffer: $0).write(to: URL(fileURLWithPath: path(name))) }
        return path(name)
    }

    /// The raw float32 values in file `name`.
    func readRaw(_ name: String) throws -> [Float] {
        try Data(contentsOf: URL(fileURLWithPath: path(name))).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
