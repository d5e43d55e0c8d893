// swift-tools-version:6.1
import PackageDescription

// Elucidate's benchmarks, kept in their own package so the main package does not depend
// on package-benchmark (and its malloc interposer). See README.md for how to run them.
//
// Build inside this folder with its own scratch path, e.g.
//   swift package --scratch-path .build benchmark
//   swift build -c release --scratch-path .build --product forward-timing

/// A package-benchmark suite in Benchmarks/NAME, with Elucidate and the parity tests'
/// deterministic weights (`ElucidateTestSupport`) and the suites' shared helpers.
func benchmarkSuite(_ name: String) -> Target {
    .executableTarget(
        name: name,
        dependencies: [
            .product(name: "Benchmark", package: "package-benchmark"),
            .product(name: "Elucidate", package: "Elucidate"),
            .product(name: "ElucidateTestSupport", package: "Elucidate"),
            "BenchmarkSupport",
        ],
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
    )
}

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
        benchmarkSuite("ResNetForward"),
        benchmarkSuite("Kernels"),
        // The gradient path: a saliency pass and single convolutions' input gradients.
        benchmarkSuite("GradientPath"),
        // Thread setting and saliency seed, shared by the suites and forward-timing.
        .target(
            name: "BenchmarkSupport",
            dependencies: [.product(name: "Elucidate", package: "Elucidate")],
            path: "BenchmarkSupport"
        ),
        // A plain timer (no package-benchmark) for tools/compare_forward.py.
        .executableTarget(
            name: "ForwardTiming",
            dependencies: [
                .product(name: "Elucidate", package: "Elucidate"),
                "BenchmarkSupport",
                // DeterministicWeights, the parity tests' weights and inputs.
                .product(name: "ElucidateTestSupport", package: "Elucidate"),
            ],
            path: "ForwardTiming"
        ),
    ]
)
