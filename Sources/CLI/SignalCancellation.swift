import Dispatch
import Elucidate
import Foundation

/// Turns SIGINT and SIGTERM into a `CancellationFlag` for a batch run: the run finishes the
/// batch in hand (every file written whole, the index complete lines only) and stops, and
/// the command exits with 128 + the signal (130, 143). A second signal is heard the same way.
enum SignalCancellation {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// A flag that SIGINT and SIGTERM set from now on (their default action, ending the
    /// process at once, is turned off).
    static func install() -> CancellationFlag {
        let flag = CancellationFlag()
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { flag.cancel(signal: number) }
            source.resume()
            sources.append(source)
        }
        return flag
    }
}
