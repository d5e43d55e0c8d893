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
        .library(name: "Elucidate", targets: ["Engine"]),
        .executable(name: "elucidate", targets: ["CLI"]),
        // The C API (Sources/CAPI/include/elucidate.h) as a shared library. SwiftPM names it
        // libElucidateC.so (product names are unique, and "elucidate" is the executable's);
        // tools/install.sh installs it as libelucidate.so with that soname.
        .library(name: "ElucidateC", type: .dynamic, targets: ["ElucidateCAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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

        // MARK: Swift engine and command line
        .target(
            name: "Engine",
            dependencies: ["CKernels", "CImageCodecs"],
            // The built-in model (BuiltinModels.swift), copied beside the binaries.
            resources: [.copy("Resources/models")]
        ),
        .executableTarget(
            name: "CLI",
            dependencies: [
                "Engine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: C API
        .target(
            name: "ElucidateCAPI",
            dependencies: ["Engine"],
            path: "Sources/CAPI",
            exclude: ["include"]
        ),

        // MARK: Tests
        .target(
            name: "TestSupport",
            dependencies: ["Engine"],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "CKernelsTests",
            dependencies: ["CKernels", "TestSupport"]
        ),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine", "CKernels", "TestSupport"]
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["TestSupport"]
        ),
        // Compiles examples/c against the built libElucidateC.so and runs them.
        .testTarget(
            name: "CAPITests",
            dependencies: ["Engine", "TestSupport"]
        ),
    ]
)
