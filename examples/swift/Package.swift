// swift-tools-version:6.1
// A program that uses Elucidate as a library: explains the built-in model's prediction on an
// image. Depends on the Elucidate package in this repository by path.
//
//   swift run --package-path examples/swift explain-builtin IMAGE OUT.png
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its folder (the repository's, which may be called
// anything in a clone), not after the package's name.
let elucidate = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "ExplainBuiltin",
    dependencies: [
        .package(path: elucidate.path),
    ],
    targets: [
        .executableTarget(
            name: "explain-builtin",
            dependencies: [.product(name: "Elucidate", package: elucidate.lastPathComponent)]
        ),
    ]
)
