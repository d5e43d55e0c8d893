import Elucidate
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A progress bar on stderr, drawn only when stderr is a terminal: units done of the total,
/// percent, rate and time left, redrawn at most ten times a second on one line; `finish`
/// erases it. It hears the library's `AttributionProgress` (done, total): the clock starts
/// with the first report, which the library makes, (0, total), before any work.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private var total = 0
    /// What is counted, plural ("passes"): the rate is shown per second of these.
    private let unit: String
    /// Whether anything is drawn: asked for, and stderr a terminal.
    let isEnabled: Bool
    private let lock = NSLock()
    private var started: Date?
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(label: String, unit: String, enabled: Bool) {
        self.label = label
        self.unit = unit
        self.isEnabled = enabled && Self.stderrIsTerminal
    }

    static var stderrIsTerminal: Bool { isatty(2) != 0 }

    /// What to hand the library: nil when nothing is drawn, so no total is even counted.
    var callback: AttributionProgress? {
        guard isEnabled else { return nil }
        return { [self] done, total in update(done, of: total) }
    }

    /// `done` units of `total` are done (the first and the last are always drawn).
    func update(_ done: Int, of total: Int) {
        guard isEnabled, total > 0 else { return }
        lock.withLock {
            let now = Date()
            if started == nil { started = now }
            self.total = total
            guard done == 0 || done >= total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
            draw(done, now: now)
        }
    }

    /// Erases the bar.
    func finish() {
        lock.withLock {
            if drawn { StandardError.write("\r\u{1B}[K") }
            drawn = false
        }
    }

    private func draw(_ done: Int, now: Date) {
        lastDraw = now
        let line = Self.line(label: label, done: done, total: total, unit: unit,
                             elapsed: now.timeIntervalSince(started ?? now), columns: Self.terminalColumns())
        // Back to the line's start, the line, then erase whatever a longer line left.
        StandardError.write("\r\(line)\u{1B}[K")  // unchecked: a failed write to the terminal is no reason to stop
        drawn = true
    }

    /// One line of the bar, e.g. `integrated-gradients [#########---------] 13/40  33% 2.41 passes/s 0:11 left`
    /// (before the first unit, `-` for the rate and the time left). The bar narrows to keep the
    /// line within `columns`, by the same amount whatever the rate, and is left out when it cannot.
    static func line(label: String, done: Int, total: Int, unit: String, elapsed: Double, columns: Int = 80) -> String {
        let fraction = total > 0 ? min(1, max(0, Double(done) / Double(total))) : 0
        let digits = String(total).count
        func counts(_ done: Int, percent: Double, rate: String, left: String) -> String {
            let count = String(repeating: " ", count: max(0, digits - String(done).count)) + String(done)
            return "\(count)/\(total) " + String(format: "%3.0f%%", percent) + " \(rate) \(unit)/s \(left) left"
        }
        let text: String
        if done > 0, elapsed > 0 {
            let left = elapsed * Double(max(0, total - done)) / Double(done)
            text = counts(done, percent: fraction * 100, rate: Self.rate(Double(done) / elapsed), left: Self.clock(left))
        } else {
            text = counts(done, percent: fraction * 100, rate: "-", left: "-:--")
        }
        // label, space, [bar], space, counts, one column spare so the cursor never wraps; room
        // for the widest usual counts (a rate like 12.34, under an hour left).
        let widest = counts(total, percent: 100, rate: "00.00", left: "00:00").count
        let width = min(30, columns - 1 - label.count - 4 - max(widest, text.count))
        guard width >= 5 else { return "\(label) \(text)" }
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        return "\(label) [\(bar)] \(text)"
    }

    /// A rate with three significant digits or so: 0.742, 12.3, 456.
    static func rate(_ value: Double) -> String {
        value < 10 ? String(format: "%.2f", value) : value < 100 ? String(format: "%.1f", value) : String(format: "%.0f", value)
    }

    /// m:ss, or h:mm:ss from an hour on.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    /// The terminal's width on stderr, else `COLUMNS`, else 80.
    static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
        return 80
    }
}
