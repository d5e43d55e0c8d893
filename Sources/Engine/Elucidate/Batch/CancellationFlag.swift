import Synchronization

/// A request to stop a batch run, safe to set from any thread (a signal handler's queue):
/// the runner checks it between batches, finishes the files of the batch in hand, and stops.
public final class CancellationFlag: Sendable {
    private let signal = Atomic<Int32>(0)

    /// A flag not yet set.
    public init() {}

    /// Asks the run to stop; `signal` (SIGINT, SIGTERM…, or any positive number) is kept for
    /// the caller's exit status. The first request wins.
    public func cancel(signal number: Int32 = 1) {
        _ = signal.compareExchange(expected: 0, desired: max(1, number), ordering: .sequentiallyConsistent)
    }

    /// Whether a stop was asked for.
    public var isCancelled: Bool { signal.load(ordering: .sequentiallyConsistent) != 0 }

    /// The signal (or number) given to the first `cancel`, or nil when not cancelled.
    public var signalNumber: Int32? {
        let value = signal.load(ordering: .sequentiallyConsistent)
        return value == 0 ? nil : value
    }
}
