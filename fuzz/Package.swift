// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for every parser of outside bytes, kept out of the main package.
// Only ever built with the fuzzer sanitizer (libFuzzer provides `main`):
//
//   cd fuzz && swift build -c debug --sanitize fuzzer --sanitize address --product fuzz-npy
//   SWIFT_BACKTRACE=enable=no ./.build/debug/fuzz-npy -max_total_time=60 corpus/npy
//
// `./run-all.sh SECONDS` builds and runs all six (see README.md).

let targets: [(product: String, target: String)] = [
    ("fuzz-safetensors", "FuzzSafetensors"),
    ("fuzz-npy", "FuzzNPY"),
    ("fuzz-jpeg", "FuzzJPEG"),
    ("fuzz-png", "FuzzPNG"),
    ("fuzz-pth", "FuzzPth"),
    ("fuzz-preprocess", "FuzzPreprocess"),
]

let package = Package(
    name: "ElucidateFuzz",
    products: targets.map { .executable(name: $0.product, targets: [$0.target]) },
    dependencies: [
        .package(name: "Elucidate", path: ".."),
    ],
    targets: targets.map {
        .executableTarget(
            name: $0.target,
            dependencies: [.product(name: "Elucidate", package: "Elucidate")],
            path: "Sources/\($0.target)",
            // No main.swift: the entry point is LLVMFuzzerTestOneInput, `main` is libFuzzer's.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    }
)
