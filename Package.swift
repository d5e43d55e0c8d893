// swift-tools-version:6.1
import PackageDescription

// OpenBLAS and LAPACKE are deliberately *not* a link-time dependency: CKernels
// loads them with dlopen after choosing OPENBLAS_CORETYPE, because OpenBLAS reads that
// variable in its library constructor, before any code of ours could set it. See
// Sources/CKernels/blas_loader.c and the README.
//
// No -march or other unsafe flag appears here: SIMD paths use per-function target
// attributes and are chosen at run time, so other packages can depend on Elucidate.

let package = Package(
    name: "Elucidate",
    products: [
        // The whole engine: `import Elucidate`.
        .library(name: "Elucidate", targets: ["Elucidate"]),
        // Single layers, for clients that need only part of the engine (the fuzz targets
        // link only the parsers they fuzz).
        .library(name: "ElucidateCore", targets: ["ElucidateCore"]),
        .library(name: "ElucidateIO", targets: ["ElucidateIO"]),
        .library(name: "ElucidateImage", targets: ["ElucidateImage"]),
        // Deterministic weights and test helpers, for the benchmarks package; not API.
        .library(name: "ElucidateTestSupport", targets: ["TestSupport"]),
        .executable(name: "elucidate", targets: ["CLI"]),
        // The C API (Sources/CAPI/include/elucidate.h) as a shared library. SwiftPM names it
        // libElucidateC.so (product names are unique, and "elucidate" is the executable's);
        // tools/install.sh installs it as libelucidate.so with that soname.
        .library(name: "ElucidateC", type: .dynamic, targets: ["ElucidateCAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation` (the DocC catalog in Sources/Engine/Elucidate).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: System libraries
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]
        ),
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),

        // MARK: C layer
        .target(
            name: "CKernels",
            linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("m"), .linkedLibrary("pthread")]
        ),
        .target(
            name: "CImageCodecs",
            dependencies: ["CTurboJPEG", "CPNG"]
        ),

        // MARK: Swift engine layers (Sources/Engine/*)
        // Each layer is its own module, so the compiler enforces the layering: a layer sees
        // only the layers listed as its dependencies, and every dependency points down.
        //
        //   Core ← IO ← Image ← Models ← Attribution
        //   Core ← NN ← Models;  Core, IO, Models, Attribution ← Evaluation;  Core, IO, Image ← Visualization;
        //   all ← Elucidate (umbrella)
        .target(
            name: "ElucidateCore",
            dependencies: ["CKernels"],
            path: "Sources/Engine/Core"
        ),
        .target(
            name: "ElucidateIO",
            dependencies: ["ElucidateCore"],
            path: "Sources/Engine/IO"
        ),
        .target(
            name: "ElucidateImage",
            dependencies: ["ElucidateCore", "ElucidateIO", "CImageCodecs"],
            path: "Sources/Engine/Image"
        ),
        .target(
            name: "ElucidateNN",
            dependencies: ["ElucidateCore", "CKernels"],
            path: "Sources/Engine/NN"
        ),
        .target(
            name: "ElucidateModels",
            dependencies: ["ElucidateCore", "ElucidateIO", "ElucidateImage", "ElucidateNN", "CKernels"],
            path: "Sources/Engine/Models",
            // The built-in model (BuiltinModels.swift), copied beside the binaries in
            // Elucidate_ElucidateModels.resources/models.
            resources: [.copy("Resources/models")]
        ),
        .target(
            name: "ElucidateAttribution",
            dependencies: ["ElucidateCore", "ElucidateNN", "ElucidateModels", "ElucidateImage", "CKernels"],
            path: "Sources/Engine/Attribution"
        ),
        .target(
            name: "ElucidateEvaluation",
            // Deletion, insertion, infidelity, sensitivity: metrics of how faithful and how
            // stable an explanation is, and the sanity check (they run the model; Attribution gives
            // seeded noise; IO the state dicts the sanity check re-initialises).
            dependencies: ["ElucidateCore", "ElucidateIO", "ElucidateModels", "ElucidateAttribution"],
            path: "Sources/Engine/Evaluation"
        ),
        .target(
            name: "ElucidateVisualization",
            dependencies: ["ElucidateCore", "ElucidateIO", "ElucidateImage", "CImageCodecs"],
            path: "Sources/Engine/Visualization"
        ),
        .target(
            name: "Elucidate",
            dependencies: [
                "ElucidateCore", "ElucidateIO", "ElucidateImage", "ElucidateNN",
                "ElucidateModels", "ElucidateAttribution", "ElucidateVisualization", "ElucidateEvaluation",
            ],
            path: "Sources/Engine/Elucidate"
        ),

        // MARK: Command line
        .executableTarget(
            name: "CLI",
            dependencies: [
                "Elucidate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: C API
        .target(
            name: "ElucidateCAPI",
            dependencies: ["Elucidate"],
            path: "Sources/CAPI",
            exclude: ["include"]
        ),

        // MARK: Test support (also a product: the benchmarks use DeterministicWeights)
        .target(
            name: "TestSupport",
            dependencies: ["Elucidate"],
            path: "Tests/TestSupport"
        ),

        // MARK: Tests (one target per layer: the layer under test, with `@testable` access,
        // and the umbrella for building models and inputs)
        .testTarget(
            name: "CKernelsTests",
            dependencies: ["CKernels", "TestSupport"]
        ),
        .testTarget(
            name: "CoreTests",
            dependencies: ["ElucidateCore", "Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "IOTests",
            dependencies: ["ElucidateIO", "Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "ImageTests",
            dependencies: ["ElucidateImage", "Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "NNTests",
            // ResNets are the deepest graphs to check gradients on (internals: @testable Models).
            dependencies: ["ElucidateNN", "ElucidateModels", "Elucidate", "CKernels", "TestSupport"]
        ),
        .testTarget(
            name: "ModelsTests",
            dependencies: ["ElucidateModels", "ElucidateImage", "Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "AttributionTests",
            // The occlusion tests check ResNet's incremental evaluator (@testable Models).
            dependencies: ["ElucidateAttribution", "ElucidateModels", "Elucidate", "CKernels", "TestSupport"]
        ),
        .testTarget(
            name: "EvaluationTests",
            dependencies: ["ElucidateEvaluation", "Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "VisualizationTests",
            dependencies: ["ElucidateVisualization", "Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "ElucidateTests",
            // The umbrella's own workflow: Explainer, options, pictures, loading.
            dependencies: ["Elucidate", "TestSupport"]
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["TestSupport"]
        ),
        // Compiles examples/c against the built libElucidateC.so and runs them.
        .testTarget(
            name: "CAPITests",
            dependencies: ["Elucidate", "TestSupport"],
            // C programs the tests compile with cc against elucidate.h.
            exclude: ["Programs"]
        ),
    ]
)
