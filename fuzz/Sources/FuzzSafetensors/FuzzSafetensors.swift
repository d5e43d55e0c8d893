// libFuzzer entry point: SafetensorsFile(bytes:) on arbitrary bytes, then every tensor it lists.
// Parse errors (ElucidateError) are the expected outcome for most inputs; only a crash,
// a sanitizer report, a hang or an out-of-memory counts as a finding.

import ElucidateCore
import ElucidateIO
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard let file = try? SafetensorsFile(bytes: bytes) else { return 0 }
    // Reading each tensor walks the offsets and dtypes the header claimed.
    for name in file.names {
        _ = file.info(name)
        _ = try? file.tensor(name)
    }
    _ = try? file.floatTensors()
    return 0
}
