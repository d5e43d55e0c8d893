// What the benchmark suites and forward-timing share.

import Elucidate
import Foundation

/// Threads for Elucidate's loops: `ELUCIDATE_BENCH_THREADS` when it is a positive integer,
/// else every core.
public func configureBenchmarkThreads() {
    if let text = ProcessInfo.processInfo.environment["ELUCIDATE_BENCH_THREADS"], let n = Int(text), n > 0 {
        Runtime.setThreadCount(n)
    } else {
        Runtime.setThreadCount(Runtime.defaultThreadCount)
    }
}

/// The seed of a saliency pass on each row's top class: for logits `[N, classes]`, a tensor
/// of the same shape with a 1 at each row's largest logit (the first, on ties) and 0 elsewhere.
public func topClassSeed(_ logits: Tensor) -> Tensor {
    let (rows, classes) = (logits.shape[0], logits.shape[1])
    var seed = Tensor(zeros: logits.shape)
    logits.withUnsafeBufferPointer { values in
        seed.withUnsafeMutableBufferPointer { s in
            for row in 0..<rows {
                let scores = values[(row * classes)..<((row + 1) * classes)]
                s[scores.indices.max { scores[$0] < scores[$1] }!] = 1
            }
        }
    }
    return seed
}
