// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for every parser of outside bytes, kept out of the main package.
// Only ever built with the fuzzer sanitizer (libFuzzer provides `main`):
//
//   cd fuzz && swift build -c debug --sanitize fuzzer --sanitize address --product fuzz-npy
//   SWIFT_BACKTRACE=enable=no ./.build/debug/fuzz-npy -max_total_time=60 corpus/npy
//
// `./run-all.sh SECONDS` builds and runs all six (see README.md).

// Each target links only the layer holding the parsers it fuzzes (ElucidateIO: safetensors,
// .npy, .pth; ElucidateImage: the image decoders and preprocessing), not the whole engine.
let targets: [(product: String, target: String, layer: String)] = [
    ("fuzz-safetensors", "FuzzSafetensors", "ElucidateIO"),
    ("fuzz-npy", "FuzzNPY", "ElucidateIO"),
    ("fuzz-jpeg", "FuzzJPEG", "ElucidateImage"),
    ("fuzz-png", "FuzzPNG", "ElucidateImage"),
    ("fuzz-pth", "FuzzPth", "ElucidateIO"),
    ("fuzz-preprocess", "FuzzPreprocess", "ElucidateImage"),
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
            dependencies: [
                .product(name: "ElucidateCore", package: "Elucidate"),
                .product(name: $0.layer, package: "Elucidate"),
            ],
            path: "Sources/\($0.target)",
            // No main.swift: the entry point is LLVMFuzzerTestOneInput, `main` is libFuzzer's.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    }
)
