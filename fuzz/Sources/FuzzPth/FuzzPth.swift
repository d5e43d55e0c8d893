// libFuzzer entry point: TorchCheckpoint.parse on arbitrary bytes, twice over.
//
// 1. The bytes as a whole file: the signature checks and the ZIP reader (and, where the
//    CRC-32s still hold, the unpickler and the tensor checks).
// 2. The bytes as the data.pkl of a torch.save-shaped archive built here, whose storages
//    '0' to '7' exist (4 KiB each): mutations of a pickle reach the unpickler, the
//    persistent ids, the allow-list and the offset/size/stride checks without having to
//    keep a CRC right. Seeds for this path are bare pickles (fuzz/corpus/pth/*.pkl).
//
// Parse errors (ElucidateError) are the expected outcome for most inputs; only a crash,
// a sanitizer report, a leak, a hang or an out-of-memory counts as a finding.

import Engine
import Foundation

private func touch(_ stateDict: StateDict) {
    var sum: Float = 0
    for key in stateDict.keys {
        guard let tensor = stateDict[key] else { continue }
        sum += tensor.withUnsafeBufferPointer { $0.reduce(0, +) }
        _ = tensor.shape
    }
    _ = sum
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    if let stateDict = try? TorchCheckpoint.parse(bytes) { touch(stateDict) }
    if !bytes.starts(with: [0x50, 0x4B]) {
        var files: [(name: String, contents: Data)] = [("archive/data.pkl", bytes), ("archive/byteorder", Data("little".utf8))]
        // Made per call: a global would outlive the run and count as a leak.
        let record = Data((0..<4_096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        for key in 0..<8 { files.append(("archive/data/\(key)", record)) }
        if let stateDict = try? TorchCheckpoint.parse(ZipArchive.storedArchive(files)) { touch(stateDict) }
    }
    return 0
}
