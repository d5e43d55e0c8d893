import CKernels

/// A SIMD level of Elucidate's own kernels (convolution transforms, pooling, batch norm,
/// element-wise ops). Each level computes the same results as the scalar reference within
/// float32 rounding; the kernel tests hold every level to it.
public enum InstructionSet: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
    /// Portable C, no vector instructions: the reference every other level is tested against.
    case scalar = 0
    /// AVX2 with FMA (x86-64-v3: Intel Haswell and later, AMD Zen and later).
    case avx2 = 1
    /// AVX-512 F, BW, DQ and VL (Intel Skylake-SP and later, AMD Zen 4 and later).
    case avx512 = 2

    /// The name `ELUCIDATE_ISA` and `elucidate` options take: `scalar`, `avx2`, `avx512`.
    public var name: String {
        switch self {
        case .scalar: "scalar"
        case .avx2: "avx2"
        case .avx512: "avx512"
        }
    }

    /// What the kernels report (`avx2+fma` for `.avx2`).
    public var description: String { String(cString: ek_isa_name(cValue)) }

    /// Parses `scalar`, `avx2` (or `avx2+fma`) and `avx512`, in any case.
    public init?(name: String) {
        var level = EK_ISA_SCALAR
        guard ek_isa_parse(name, &level) != 0 else { return nil }
        self.init(level)
    }

    init(_ level: ek_isa) { self = InstructionSet(rawValue: Int(level.rawValue)) ?? .scalar }
    var cValue: ek_isa { ek_isa(rawValue: UInt32(rawValue)) }

    public static func < (a: InstructionSet, b: InstructionSet) -> Bool { a.rawValue < b.rawValue }
}

/// Which level is in force and why (`Runtime.instructionSetChoice`).
public struct InstructionSetChoice: Sendable, Equatable {
    /// Why `level` is in force.
    public enum Origin: Sendable, Equatable {
        /// The best level the CPU supports.
        case cpu
        /// `ELUCIDATE_ISA`, read when the first kernel ran.
        case environment
        /// `Runtime.setInstructionSet(_:)` (or `ek_set_isa` from C).
        case program
    }

    /// The level the kernels use now.
    public let level: InstructionSet
    /// The best level this CPU (and OS) supports.
    public let detected: InstructionSet
    /// Why `level` is in force: the CPU, `ELUCIDATE_ISA`, or the program.
    public let origin: Origin
    /// `ELUCIDATE_ISA` as read, when it was set.
    public let environmentValue: String?
    /// Why `ELUCIDATE_ISA` was not followed, when it was set but ignored (the command line
    /// refuses to run then; the library runs at the CPU's level).
    public let environmentProblem: String?

    /// One line for people: the level and why, e.g.
    /// `avx2+fma (ELUCIDATE_ISA=avx2; this CPU has avx512)`.
    public var summary: String {
        var why: String
        switch origin {
        case .cpu: why = "the best this CPU has"
        case .environment: why = "ELUCIDATE_ISA=\(environmentValue ?? "")"
        case .program: why = "set by the program"
        }
        if level != detected { why += "; this CPU has \(detected)" }
        if let environmentProblem { why += "; ignored: \(environmentProblem)" }
        return "\(level) (\(why))"
    }
}

extension Runtime {
    /// The SIMD level Elucidate's kernels use now.
    ///
    /// It starts as the CPU's best, or as the environment variable `ELUCIDATE_ISA`
    /// (`scalar`, `avx2` or `avx512`) says when it names a level this CPU has; that variable,
    /// set before the process starts, also picks OpenBLAS's kernels for that level (unless
    /// `OPENBLAS_CORETYPE` is set), so the whole process computes as on such a CPU.
    /// Reading it is safe from any thread.
    public static var instructionSet: InstructionSet { InstructionSet(ek_isa_active()) }

    /// The best level this CPU supports.
    public static var detectedInstructionSet: InstructionSet { InstructionSet(ek_isa_detected()) }

    /// The level in force, the CPU's, and why; says when `ELUCIDATE_ISA` was ignored.
    public static var instructionSetChoice: InstructionSetChoice {
        let info = ek_isa_get_info()
        let value = info.environment.map { String(cString: $0) }
        let detected = InstructionSet(info.detected)
        var problem: String?
        switch info.environment_request {
        case EK_ISA_REQUEST_UNKNOWN:
            problem = "ELUCIDATE_ISA=\(value ?? "") is not a level (scalar, avx2, avx512)"
        case EK_ISA_REQUEST_ABOVE_CPU:
            problem = "ELUCIDATE_ISA=\(value ?? "") asks for more than this CPU has (\(detected))"
        default:
            problem = nil
        }
        let origin: InstructionSetChoice.Origin
        switch info.origin {
        case EK_ISA_ORIGIN_ENVIRONMENT: origin = .environment
        case EK_ISA_ORIGIN_PROGRAM: origin = .program
        default: origin = .cpu
        }
        return InstructionSetChoice(level: InstructionSet(info.active), detected: detected, origin: origin,
                                    environmentValue: value, environmentProblem: problem)
    }

    /// Forces Elucidate's kernels to `level` for the whole process (every thread), or with
    /// `nil` goes back to the starting level (`ELUCIDATE_ISA`'s or the CPU's).
    ///
    /// Set it before the first model call (reading is safe from any thread), or at least
    /// between computations: a kernel already running finishes at its level and the next one
    /// takes the new level, so an explanation running meanwhile would mix both levels'
    /// roundings. It does not change OpenBLAS's kernels once OpenBLAS is loaded (use
    /// `ELUCIDATE_ISA` for that).
    ///
    /// - Throws: `.invalidArgument` when this CPU lacks `level`.
    public static func setInstructionSet(_ level: InstructionSet?) throws(ElucidateError) {
        guard let level else {
            _ = ek_isa_reset()
            return
        }
        guard level <= detectedInstructionSet else {
            throw ElucidateError(.invalidArgument, "this CPU does not support \(level) (it has \(detectedInstructionSet))")
        }
        _ = ek_set_isa(level.cValue)
    }
}
