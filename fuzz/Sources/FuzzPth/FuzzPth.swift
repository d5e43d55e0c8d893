// libFuzzer entry point: TorchCheckpoint.parse on arbitrary bytes, twice over.
//
// 1. The bytes as a whole file: the signature checks and the ZIP reader (and, where the
//    CRC-32s still hold, the unpickler and the tensor checks).
// 2. The bytes as the data.pkl of a torch.save-shaped archive built here, whose storages
//    '0' to '7' exist (4 KiB each): mutations of a pickle reach the unpickler, the
//    persistent ids, the allow-list and the offset/size/stride checks without having to
//    keep a CRC right. Seeds for this path are bare pickles (fuzz/corpus/pth/*.pkl).
//
// The archive of path 2 is spliced from a constant part made once (the byteorder record and
// the eight storages with their CRC-32s, in LLVMFuzzerInitialize) and the input's own entry:
// making all of it per input (32 KiB of storage bytes, mapped byte by byte, then CRC-32'd)
// was 80 % of the time of a run, 4 ms an input under the sanitizers.
//
// Parse errors (ElucidateError) are the expected outcome for most inputs; only a crash,
// a sanitizer report, a leak, a hang or an out-of-memory counts as a finding.

import ElucidateCore
import ElucidateIO
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

/// The constant part of path 2's archive: the local records of `archive/byteorder` and
/// `archive/data/0` … `archive/data/7` (4 KiB each), and their central-directory records.
/// Arrays, not Data: LeakSanitizer does not see Data's storage pointer (kept with spare bits
/// in an enum) from a global, and reports it as leaked at exit.
private struct Template {
    let local: [UInt8]
    let central: [UInt8]
    let count: Int
}

private func u32(_ data: Data, _ offset: Int) -> Int {
    (0..<4).reduce(0) { $0 | Int(data[data.startIndex + offset + $1]) << (8 * $1) }
}

private func append(_ value: Int, bytes: Int, to data: inout Data) {
    for index in 0..<bytes { data.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
}

private let template: Template = {
    let record = Data((0..<4_096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
    var files: [(name: String, contents: Data)] = [("archive/byteorder", Data("little".utf8))]
    for key in 0..<8 { files.append(("archive/data/\(key)", record)) }
    let archive = ZipArchive.storedArchive(files)
    let end = archive.count - 22  // no comment
    let size = u32(archive, end + 12), offset = u32(archive, end + 16)
    return Template(local: [UInt8](archive[0..<offset]), central: [UInt8](archive[offset..<(offset + size)]), count: files.count)
}()

/// `ZipArchive.storedArchive` of the template's entries followed by `archive/data.pkl` holding
/// `pickle`: the same bytes, with only the pickle's CRC-32 computed.
private func archive(pickle: Data) -> Data {
    let single = ZipArchive.storedArchive([("archive/data.pkl", pickle)])
    let end = single.count - 22
    let centralOffset = u32(single, end + 16)
    var central = Data(single[centralOffset..<end])
    let shifted = template.local.count  // the pickle's local header moves past the template's
    for index in 0..<4 { central[42 + index] = UInt8(truncatingIfNeeded: shifted >> (8 * index)) }
    var result = Data(template.local)
    result.append(single[0..<centralOffset])
    let directoryOffset = result.count
    result.append(contentsOf: template.central)
    result.append(central)
    append(0x0605_4B50, bytes: 4, to: &result)
    append(0, bytes: 4, to: &result)  // disk numbers
    append(template.count + 1, bytes: 2, to: &result)
    append(template.count + 1, bytes: 2, to: &result)
    append(template.central.count + central.count, bytes: 4, to: &result)
    append(directoryOffset, bytes: 4, to: &result)
    append(0, bytes: 2, to: &result)  // comment length
    return result
}

/// Builds the template before the first input, so that its allocations are not counted
/// against an input by libFuzzer's leak check.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    // The splice must give exactly the archive storedArchive writes for all ten entries.
    let pickle = Data([0x80, 0x02, 0x7D, 0x2E])  // PROTO 2, EMPTY_DICT, STOP
    let record = Data((0..<4_096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
    var files: [(name: String, contents: Data)] = [("archive/byteorder", Data("little".utf8))]
    for key in 0..<8 { files.append(("archive/data/\(key)", record)) }
    files.append(("archive/data.pkl", pickle))
    precondition(archive(pickle: pickle) == ZipArchive.storedArchive(files), "spliced archive differs")
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    if let stateDict = try? TorchCheckpoint.parse(bytes) { touch(stateDict) }
    if !bytes.starts(with: [0x50, 0x4B]) {
        if let stateDict = try? TorchCheckpoint.parse(archive(pickle: bytes)) { touch(stateDict) }
    }
    return 0
}
