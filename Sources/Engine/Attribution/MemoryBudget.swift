import ElucidateCore
import ElucidateImage
import ElucidateModels
import ElucidateNN
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How much memory the attribution methods that must hold every sample at once may plan on.
///
/// A sample count is a promise of work, not of memory. Most sampling methods stream their
/// samples in bounded batches (NoiseTunnel, GradientSHAP, Shapley value sampling), so their
/// memory does not grow with the count. KernelSHAP and LIME fit a surrogate on the whole
/// sample matrix (samples × features), so they compute the memory a count needs before
/// allocating anything and refuse counts above this budget, saying how much they would need
/// and how many samples fit.
///
/// The budget is half of the memory this process may use — the least of the physical
/// memory, the cgroup limit (`memory.max`, containers) and the address-space limit
/// (`ulimit -v`) — unless `ELUCIDATE_MEMORY_BUDGET` sets it (bytes, or a number with the suffix
/// K, M, G or T: powers of 1024, e.g. `12G`), or a program sets `MemoryBudget.override`.
public enum MemoryBudget {
    nonisolated(unsafe) private static var overrideBytes: Int?
    private static let lock = NSLock()

    /// A budget in bytes set by the program (nil: the environment's or the default).
    public static var override: Int? {
        get { lock.lock(); defer { lock.unlock() }; return overrideBytes }
        set { lock.lock(); overrideBytes = newValue; lock.unlock() }
    }

    /// The budget in bytes and where it comes from, for messages.
    public static func current() throws(ElucidateError) -> (bytes: Int, origin: String) {
        if let override { return (max(0, override), "set by the program") }
        if let text = ProcessInfo.processInfo.environment["ELUCIDATE_MEMORY_BUDGET"] {
            guard let bytes = parseSize(text) else {
                throw ElucidateError(.invalidArgument,
                                     "ELUCIDATE_MEMORY_BUDGET='\(text)' is not a size such as 8G, 512M or 1000000 (bytes)")
            }
            return (bytes, "ELUCIDATE_MEMORY_BUDGET")
        }
        let (usable, what) = usableMemory()
        return (usable / 2, "half of the \(format(usable)) \(what); ELUCIDATE_MEMORY_BUDGET changes it")
    }

    /// Bytes from "123", "64K", "512M", "8G", "1T" (powers of 1024; an optional trailing "B"
    /// or "iB"); nil for anything else or a size that overflows.
    public static func parseSize(_ text: String) -> Int? {
        var body = text.trimmingCharacters(in: .whitespaces).uppercased()
        if body.hasSuffix("IB") { body.removeLast(2) } else if body.hasSuffix("B") { body.removeLast() }
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var scale = 1
        if let last = body.last, let unit = units[last] {
            scale = unit
            body.removeLast()
        }
        guard !body.isEmpty, body.allSatisfy(\.isASCII), let value = Double(body), value.isFinite, value >= 0 else { return nil }
        let bytes = value * Double(scale)
        guard bytes < 9.0e18 else { return nil }
        return Int(bytes)
    }

    /// The least of physical memory, the cgroup v2/v1 limit and RLIMIT_AS, and which it is.
    static func usableMemory() -> (bytes: Int, what: String) {
        var best = (bytes: Int(clamping: ProcessInfo.processInfo.physicalMemory), what: "of physical memory")
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0, limit < best.bytes {
                best = (limit, "memory limit of this container (cgroup)")
            }
        }
        #if canImport(Glibc) || canImport(Darwin)
        var limit = rlimit()
        // RLIM_INFINITY is all ones, so "below the best so far" also skips it.
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, UInt64(limit.rlim_cur) < UInt64(best.bytes) {
            best = (Int(limit.rlim_cur), "address-space limit set by ulimit -v")
        }
        #endif
        return best
    }

    /// "1.5 GiB", "12.0 MiB", "512 bytes".
    public static func format(_ bytes: Int) -> String {
        let units = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size { return String(format: "%.1f %@", Double(bytes) / Double(size), name) }
        return "\(bytes) bytes"
    }
}

/// `a × b`, or nil when it overflows `Int` (or either is negative).
func checkedProduct(_ a: Int, _ b: Int) -> Int? {
    guard a >= 0, b >= 0 else { return nil }
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : product
}

/// `a × b` for counts of work (progress totals): `Int.max` when it overflows, so a bar over
/// an absurd count reads "forever" instead of crashing.
func saturatingProduct(_ a: Int, _ b: Int) -> Int {
    checkedProduct(max(0, a), max(0, b)) ?? .max
}

/// `a + b` for counts of work, `Int.max` when it overflows.
func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}
