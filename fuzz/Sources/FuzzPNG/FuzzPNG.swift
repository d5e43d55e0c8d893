// libFuzzer entry point: ImageDecoder.decode on PNG-like bytes (seeded with PNGs; the decoder sniffs the format),
// and the eXIf/XMP orientation reader (ExifOrientation.read, decode(_:exif: .apply)).
// Parse errors (ElucidateError) are the expected outcome for most inputs; only a crash,
// a sanitizer report, a hang or an out-of-memory counts as a finding.

import ElucidateCore
import ElucidateImage
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    if let image = try? ImageDecoder.decode(bytes) {
        precondition(image.pixels.count == image.width * image.height * 3, "RGB buffer size")
    }
    // The EXIF/XMP orientation reader, on every input (the decoder need not succeed), and the
    // turned image when decoding does.
    _ = ExifOrientation.read(bytes)
    if let turned = try? ImageDecoder.decode(bytes, exif: .apply) {
        precondition(turned.pixels.count == turned.width * turned.height * 3, "turned RGB buffer size")
    }
    return 0
}
