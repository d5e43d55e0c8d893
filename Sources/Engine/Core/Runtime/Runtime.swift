import CKernels
import Dispatch
import Foundation

/// Process-wide compute settings: how many threads kernels use, and what the BLAS loader did.
///
/// Every kernel, products included, is split into `threadCount` shares (ggml's ith/nth) that
/// run on Dispatch's worker threads; OpenBLAS itself runs single-threaded inside each share.
///
/// Concurrency contract: the settings (`setThreadCount(_:)`, `winogradEnabled`,
/// `setInstructionSet(_:)`, `ELUCIDATE_WINOGRAD`, `ELUCIDATE_ISA`) are set before the first model
/// call; reading them is safe from any thread. How a kernel splits its work is a function of
/// these settings and the shapes only — never of how many threads happen to be free — so one
/// model shared by many threads gives every caller the same floats, bit for bit, as a
/// sequential run. Changing a setting while computations run changes the arithmetic (which
/// convolution algorithm, which split) of the calls in flight: set it between computations.
/// OpenBLAS's own thread count is configured once, when it is loaded (one thread), and never
/// changed afterwards.
public enum Runtime {
    nonisolated(unsafe) private static var configuredThreads: Int = defaultThreadCount
    private static let lock = NSLock()

    /// The number of online cores.
    public static var defaultThreadCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Shares Elucidate's parallel loops (products included) split their work into.
    /// Reading it is safe from any thread.
    public static var threadCount: Int {
        lock.lock(); defer { lock.unlock() }
        return configuredThreads
    }

    /// Sets the number of shares of Elucidate's parallel loops (clamped to ≥ 1). Set it
    /// before the first model call; reading is safe from any thread.
    ///
    /// It no longer sets OpenBLAS's thread count: that is process-global, so setting it here
    /// (and per layer call, as `ensureBLAS` did) let concurrent callers flip it under each
    /// other's products. OpenBLAS stays single-threaded and products are split over these
    /// shares (`gemm`).
    public static func setThreadCount(_ count: Int) {
        let n = max(1, count)
        lock.lock()
        configuredThreads = n
        lock.unlock()
    }

    /// Returns to the system the large buffers Elucidate keeps for reuse after a computation,
    /// and the number of bytes that freed.
    ///
    /// Tensors of a megabyte and more are recycled: freed ones are kept (bounded by the most the
    /// process has had in use at once, plus at most 256 MiB) so that the next pass of an attribution
    /// method reuses them without page faults. A host that has finished explaining and wants
    /// that memory back calls this; the next computation maps afresh. Safe from any thread,
    /// also while computations run (it only releases buffers nobody holds).
    @discardableResult
    public static func releaseCachedMemory() -> Int { LargeBuffers.releaseKept() }

    /// Loads OpenBLAS (once) and describes the kernels in use.
    public static var blas: BLASInfo {
        let info = ek_blas_get_info()
        return BLASInfo(
            loaded: info.loaded != 0,
            library: info.library.map { String(cString: $0) },
            coreName: info.core_name.map { String(cString: $0) },
            coretypeEnvironment: info.coretype_env.map { String(cString: $0) },
            coretypeSetByElucidate: info.coretype_set_by_us != 0,
            error: info.error.map { String(cString: $0) })
    }

    /// `ELUCIDATE_WINOGRAD=0` starts with Winograd off, so benchmarks can time both paths.
    nonisolated(unsafe) private static var winograd = ProcessInfo.processInfo.environment["ELUCIDATE_WINOGRAD"] != "0"

    /// Whether convolutions with 3×3 stride-1 kernels (and their input gradients) use
    /// Winograd F(m×m, 3×3) (2.25–5× fewer multiply-adds, float32 error near 1e-6 relative)
    /// rather than im2col. On by default (see `ELUCIDATE_WINOGRAD`). Set it before the first
    /// model call: each convolution reads it, so a change during an explanation mixes both
    /// algorithms' roundings (differences of order 1e-6 relative). Reading is safe from any thread.
    public static var winogradEnabled: Bool {
        get { lock.lock(); defer { lock.unlock() }; return winograd }
        set { lock.lock(); winograd = newValue; lock.unlock() }
    }


    /// `ELUCIDATE_WINOGRAD_TILE=4`, `5` or `6` starts with that Winograd tile forced, so
    /// benchmarks can time the tile sizes against each other.
    nonisolated(unsafe) private static var forcedWinogradTile: Int32 = {
        guard let value = ProcessInfo.processInfo.environment["ELUCIDATE_WINOGRAD_TILE"],
              let tile = Int32(value), (4...6).contains(tile) else { return 0 }
        return tile
    }()

    /// The Winograd output tile m of F(m×m, 3×3) every convolution uses: 4, 5 or 6, or 0 (the
    /// default) to choose per output plane the m with the cheapest multiplications
    /// (`ek_winograd_tile_size`: at 224², F(5×5) on the 14² planes, F(4×4) on the others).
    /// Larger tiles round less well; see winograd.c. Set it before the first model call.
    package static var winogradTile: Int32 {
        get { lock.lock(); defer { lock.unlock() }; return forcedWinogradTile }
        set {
            precondition(newValue == 0 || (4...6).contains(newValue), "Winograd tile 4, 5, 6 or 0")
            lock.lock(); forcedWinogradTile = newValue; lock.unlock()
        }
    }

    /// Makes sure BLAS is usable; throws a clear error if it cannot be loaded.
    ///
    /// It does not touch OpenBLAS's thread count: the loader sets it to 1 once, when OpenBLAS
    /// is loaded (`ek_blas_load`), and every product is split over Elucidate's threads
    /// (`gemm`) or runs on the caller's. Setting it here on every layer call, with 1 for
    /// inference and `threadCount` for weight gradients, made concurrent callers overwrite the
    /// process-global value under each other's products.
    package static func ensureBLAS() throws(ElucidateError) {
        let status = ek_blas_load()
        guard status == EK_OK else {
            let reason = blas.error ?? "unknown reason"
            throw ElucidateError(.internalFailure,
                                 "cannot load OpenBLAS (install libopenblas0): \(reason)")
        }
    }

    /// Below this many elements per share, handing work to another thread (~10 µs) costs
    /// more than it saves.
    static let minimumElementsPerShare = 32_768

    /// Runs `body(ith, nth)` for ith in 0..<nth in parallel, with
    /// nth = min(threadCount, maxShares, elements / minimumElementsPerShare), at least 1.
    /// Kernels return a status; the first failure is returned.
    ///
    /// The split depends on the setting and the shapes only: share `ith` always gets the same
    /// part, whichever thread runs it and however busy the machine is (Dispatch may run
    /// several shares on one thread), and shares write disjoint outputs, so no result
    /// depends on the order they finish in.
    ///
    /// - Parameters: maxShares: the units the kernel splits (planes, rows); elements: the
    ///   floats the whole call touches, which decides whether splitting pays.
    package static func parallel(maxShares: Int, elements: Int, _ body: (Int32, Int32) -> ek_status) -> ek_status {
        let nth = max(1, min(threadCount, maxShares, elements / minimumElementsPerShare))
        if nth == 1 { return body(0, 1) }
        let failure = FirstFailure()
        // The shares touch disjoint parts of buffers the caller keeps alive for the call.
        return withoutActuallyEscaping(body) { escapable in
            let share = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: nth) { ith in
                let status = share.value(Int32(ith), Int32(nth))
                if status != EK_OK { failure.record(status) }
            }
            return failure.status
        }
    }
}

// MARK: - Shared kernel params

/// A kernel params struct with ggml's work share (`ith` of `nth`).
package protocol KernelShareParams {
    var ith: Int32 { get set }
    var nth: Int32 { get set }
}

extension ek_conv2d_params: KernelShareParams {}
extension ek_pool2d_params: KernelShareParams {}
extension ek_adaptive_pool2d_params: KernelShareParams {}
extension ek_batchnorm_params: KernelShareParams {}
extension ek_basis_sum_params: KernelShareParams {}

extension Runtime {
    /// `parallel(maxShares:elements:)` handing each share a copy of `params` with its
    /// `ith`/`nth` filled in.
    package static func parallel<Params: KernelShareParams>(_ params: Params, maxShares: Int, elements: Int,
                                                    _ body: (inout Params) -> ek_status) -> ek_status {
        parallel(maxShares: maxShares, elements: elements) { ith, nth in
            var share = params
            share.ith = ith
            share.nth = nth
            return body(&share)
        }
    }
}

// MARK: - Inference products

extension Runtime {
    /// C[M, N] = op(A) · B[K, N] (row-major, lda/ldb/ldc as in BLAS; op(A) is A[M, K], or
    /// Aᵀ of A stored [K, M] when `transposingA`), split across Elucidate's threads with
    /// OpenBLAS single-threaded in each share: the N columns in blocks of 16 when N ≥ M, else
    /// the M rows.
    ///
    /// Why not OpenBLAS's own threads: its idle workers spin (sched_yield) for a while after
    /// every product, and in a forward pass they compete with the transforms, im2col and
    /// epilogues running on Elucidate's threads between products.
    ///
    /// - Precondition: `ensureBLAS()` was called (OpenBLAS single-threaded).
    package static func gemm(transposingA: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let transA: Int32 = transposingA ? 1 : 0
        let splitColumns = n >= m
        let units = splitColumns ? (n + 15) / 16 : m
        let work = m * n * k
        let shares = work < 1 << 21 ? 1 : units
        checkKernel(parallel(maxShares: shares, elements: .max) { ith, nth in
            let first = units * Int(ith) / Int(nth), last = units * Int(ith + 1) / Int(nth)
            if splitColumns {
                let (c0, c1) = (first * 16, min(n, last * 16))
                guard c1 > c0 else { return EK_OK }
                return ek_gemm_f32(transA, 0, Int64(m), Int64(c1 - c0), Int64(k), 1, a, Int64(lda), b + c0, Int64(ldb), 0,
                                   c + c0, Int64(ldc))
            }
            guard last > first else { return EK_OK }
            // Rows first..<last of op(A): rows of A, or columns of the stored Aᵀ.
            let rowsOfA = transposingA ? a + first : a + first * lda
            return ek_gemm_f32(transA, 0, Int64(last - first), Int64(n), Int64(k), 1, rowsOfA, Int64(lda), b,
                               Int64(ldb), 0, c + first * ldc, Int64(ldc))
        }, "gemm")
    }

    nonisolated(unsafe) private static var packedOverride: Bool?

    /// Forces `packedProducts` on or off (nil: the default rule), for tests that compare both
    /// paths in any build.
    package static var packedProductsOverride: Bool? {
        get { lock.lock(); defer { lock.unlock() }; return packedOverride }
        set { lock.lock(); packedOverride = newValue; lock.unlock() }
    }

    /// Whether convolutions multiply through Elucidate's packed products (`ek_gemm_packed_f32`:
    /// weights packed once per layer, bias and ReLU in the store) rather than OpenBLAS: at the
    /// AVX2 level, in an optimised build of CKernels (unoptimised, as in a debug build, the tile
    /// is several times slower than OpenBLAS). The scalar level keeps OpenBLAS, because the
    /// packed products' scalar reference is one `fmaf` chain per element (the same bits as the
    /// vector tile, far too slow for whole networks); the AVX-512 level keeps OpenBLAS's 512-bit
    /// kernels, which a 256-bit tile would not beat on CPUs with two 512-bit FMA pipes.
    package static var packedProducts: Bool {
        if let forced = packedProductsOverride { return forced }
        return ek_isa_active() == EK_ISA_AVX2 && ek_gemm_packed_optimized() != 0
    }

    /// C = act(A·B + bias) through `ek_gemm_packed_f32`, the column panels split over
    /// Elucidate's threads. `a` and `b` are packed (`ek_gemm_pack_a_f32`, `packB`); C's
    /// element (row, col) is at `c[(col / plane)·imageStride + row·plane + col % plane]`.
    package static func packedGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                   c: UnsafeMutablePointer<Float>, plane: Int, imageStride: Int,
                                   bias: UnsafePointer<Float>? = nil, activation: ek_activation = EK_ACT_NONE) {
        let panels = (n + Int(EK_GEMM_NR) - 1) / Int(EK_GEMM_NR)
        let work = m * n * k
        checkKernel(parallel(maxShares: work < 1 << 21 ? 1 : panels, elements: .max) { ith, nth in
            let first = panels * Int(ith) / Int(nth), last = panels * Int(ith + 1) / Int(nth)
            guard last > first else { return EK_OK }
            var params = ek_gemm_packed_params(m: Int64(m), n: Int64(n), k: Int64(k), a: a, b: b, c: c,
                                               plane: Int64(plane), image_stride: Int64(imageStride), bias: bias,
                                               activation: activation, panel_begin: Int64(first), panel_end: Int64(last))
            return ek_gemm_packed_f32(&params)
        }, "packed gemm")
    }

    /// B `[k, n]` packed for `packedGEMM` into `packed`: element (row, col) read at
    /// `b[(col / plane)·imageStride + row·plane + col % plane]`, split over Elucidate's threads.
    package static func packB(k: Int, n: Int, b: UnsafePointer<Float>, plane: Int, imageStride: Int,
                              into packed: UnsafeMutablePointer<Float>) {
        let panels = (n + Int(EK_GEMM_NR) - 1) / Int(EK_GEMM_NR)
        checkKernel(parallel(maxShares: panels, elements: k * n) { ith, nth in
            ek_gemm_pack_b_f32(Int64(k), Int64(n), b, Int64(plane), Int64(imageStride), packed, ith, nth)
        }, "packing")
    }

    /// Runs `count` independent single-threaded products `body(index)` spread over
    /// Elucidate's threads (the (m + 2)² products of a Winograd convolution).
    ///
    /// - Precondition: `ensureBLAS()` was called (OpenBLAS single-threaded).
    package static func gemms(count: Int, _ body: (Int) -> ek_status) {
        checkKernel(parallel(maxShares: count, elements: .max) { ith, nth in
            for index in (count * Int(ith) / Int(nth))..<(count * Int(ith + 1) / Int(nth)) {
                let status = body(index)
                if status != EK_OK { return status }
            }
            return EK_OK
        }, "gemms")
    }
}

/// What `Runtime.blas` reports.
public struct BLASInfo: Sendable, Equatable {
    /// Whether OpenBLAS is loaded and usable (loading it on first use succeeded).
    public let loaded: Bool
    /// The OpenBLAS library that was opened (a soname or path), when one was.
    public let library: String?
    /// The kernels OpenBLAS chose, as it names them (`SkylakeX`, `Haswell`, …).
    public let coreName: String?
    /// `OPENBLAS_CORETYPE` as OpenBLAS saw it when it loaded, if set.
    public let coretypeEnvironment: String?
    /// Whether Elucidate set `OPENBLAS_CORETYPE` (from its CPU query) rather than the user.
    public let coretypeSetByElucidate: Bool
    /// Why OpenBLAS could not be loaded, when it could not.
    public let error: String?
}

extension Runtime {
    /// Loads LAPACKE (once, after OpenBLAS) and says which library serves the least-squares
    /// solver.
    public static var lapack: LAPACKInfo {
        let info = ek_lapack_get_info()
        return LAPACKInfo(loaded: info.loaded != 0,
                          library: info.library.map { String(cString: $0) },
                          lapackLibrary: info.lapack_library.map { String(cString: $0) },
                          error: info.error.map { String(cString: $0) })
    }
}

/// What `Runtime.lapack` reports.
public struct LAPACKInfo: Sendable, Equatable {
    /// Whether LAPACKE is loaded and its least-squares solver usable.
    public let loaded: Bool
    /// The LAPACKE soname that was opened.
    public let library: String?
    /// The file that provides the LAPACK routine behind it (OpenBLAS or reference LAPACK).
    public let lapackLibrary: String?
    /// Why LAPACKE could not be loaded, when it could not.
    public let error: String?
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

private final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var status: ek_status = EK_OK
    func record(_ s: ek_status) {
        lock.lock()
        if status == EK_OK { status = s }
        lock.unlock()
    }
}

/// Turns a kernel status into a precondition failure: the Swift layer validates shapes
/// before calling, so a failing kernel is a programming error.
@inline(__always)
package func checkKernel(_ status: ek_status, _ what: @autoclosure () -> String) {
    precondition(status == EK_OK, "\(what()): \(String(cString: ek_status_string(status)))")
}
