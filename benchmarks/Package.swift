// swift-tools-version:6.1
import PackageDescription

// Elucidate's benchmarks, kept in their own package so the main package does not depend
// on package-benchmark (and its malloc interposer). See README.md for how to run them.
//
// Build inside this folder with its own scratch path, e.g.
//   swift package --scratch-path .build benchmark
//   swift build -c release --scratch-path .build --product forward-timing

let package = Package(
    name: "ElucidateBenchmarks",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "forward-timing", targets: ["ForwardTiming"]),
    ],
    dependencies: [
        .package(name: "Elucidate", path: ".."),
        // "MallocInterposer" alone: it gives the malloc metrics, and leaving the other default
        // trait (RuntimeInterposer, ARC counters on Swift 6.3) off keeps its extra package out.
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // package-benchmark suites: `swift package benchmark --target ResNetForward`.
        .executableTarget(
            name: "ResNetForward",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Elucidate", package: "Elucidate"),
                .product(name: "ElucidateTestSupport", package: "Elucidate"),
            ],
            path: "Benchmarks/ResNetForward",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "Kernels",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Elucidate", package: "Elucidate"),
                .product(name: "ElucidateTestSupport", package: "Elucidate"),
            ],
            path: "Benchmarks/Kernels",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        // The gradient path: a saliency pass and single convolutions' input gradients.
        .executableTarget(
            name: "GradientPath",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Elucidate", package: "Elucidate"),
                .product(name: "ElucidateTestSupport", package: "Elucidate"),
            ],
            path: "Benchmarks/GradientPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        // A plain timer (no package-benchmark) for tools/compare_forward.py.
        .executableTarget(
            name: "ForwardTiming",
            dependencies: [
                .product(name: "Elucidate", package: "Elucidate"),
                // DeterministicWeights, the parity tests' weights and inputs.
                .product(name: "ElucidateTestSupport", package: "Elucidate"),
            ],
            path: "ForwardTiming"
        ),
    ]
)
