// libFuzzer entry point: NPY.parse on arbitrary bytes.
// Parse errors (ElucidateError) are the expected outcome for most inputs; only a crash,
// a sanitizer report, a hang or an out-of-memory counts as a finding.

import ElucidateCore
import ElucidateIO
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    if let array = try? NPY.parse(bytes) {
        // Touch the parsed values so a shape/size mismatch would surface.
        switch array {
        case .float32(let tensor): _ = tensor.withUnsafeBufferPointer { $0.reduce(0, +) }
        case .int32(_, let values): _ = values.reduce(0, &+)
        }
        _ = array.shape
    }
    return 0
}
