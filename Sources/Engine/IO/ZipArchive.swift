import ElucidateCore
import Foundation

// A minimal, strict reader for the ZIP archives `torch.save` writes (PyTorch ≥ 1.6,
// through miniz): every entry stored (method 0, no compression), local headers with a
// data descriptor (flag bit 3) and, in recent versions, an "FB" padding extra field that
// aligns each entry's data to 64 bytes; a ZIP64 end-of-central-directory record and
// locator always, and ZIP64 extra fields in the central directory once sizes or offsets
// pass 4 GiB. The central directory is the authority; each local header is checked
// against it.
//
//   [local header + data (+ data descriptor)] ...  central directory
//   [ZIP64 end record, ZIP64 locator]  end of central directory (+ comment)
//
// Refused: reading an entry compressed with any method (the structure of such an
// archive is still validated, so callers can tell what it is), encryption, archives split over several disks,
// bytes before the first entry or after the end record, entries that overlap each other
// or the central directory, names that could escape a folder or name the same file
// twice. CRC-32 is verified whenever an entry's contents are read. Every read is bounds
// checked; no offset taken from the file is trusted before it is compared with the size.

/// A read-only ZIP archive held in memory (or memory-mapped) whose entries are stored
/// uncompressed, as `torch.save` writes them.
///
/// Errors are `ElucidateError`s of kind `.invalidFormat` (malformed archive, CRC
/// mismatch) or `.unsupported` (compression, encryption, multi-disk), without a path.
public struct ZipArchive: Sendable {
    /// One file in the archive.
    public struct Entry: Sendable, Equatable {
        /// The name as stored, e.g. `archive/data/0`.
        public let name: String
        /// Size of the contents in bytes.
        public let size: Int
        /// The CRC-32 the central directory records for the contents.
        public let crc32: UInt32
        /// Offset of the contents from the start of the archive.
        public let dataOffset: Int
        /// The compression method: 0 (stored) is the only one whose contents can be read.
        public let method: Int
        /// Bytes the entry occupies in the archive (`size` when stored).
        let storedSize: Int
    }

    /// Most entries accepted (a ResNet152 checkpoint has about a thousand).
    public static let maximumEntryCount = 1_000_000
    /// Longest entry name accepted, in bytes.
    public static let maximumNameLength = 4_096

    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]
    private let data: Data

    /// Parses and validates the archive's structure (not yet the CRCs: see `contents(of:)`).
    public init(bytes: Data) throws(ElucidateError) {
        let result: Result<[Entry], ElucidateError> = bytes.withUnsafeBytes { raw in
            Result { () throws(ElucidateError) -> [Entry] in try Self.parse(raw) }
        }
        let entries = try result.get()
        var index: [String: Int] = [:]
        for (position, entry) in entries.enumerated() { index[entry.name] = position }
        self.entries = entries
        self.index = index
        self.data = bytes
    }

    /// The entry named `name`, or nil.
    public func entry(_ name: String) -> Entry? {
        index[name].map { entries[$0] }
    }

    /// A copy of entry `name`'s contents, CRC-32 verified.
    public func contents(of name: String) throws(ElucidateError) -> Data {
        try withContents(of: name) { (bytes: UnsafeRawBufferPointer) throws(ElucidateError) -> Data in Data(bytes) }
    }

    /// Calls `body` with entry `name`'s contents in place (no copy), after verifying its
    /// CRC-32. The buffer is valid only during the call.
    public func withContents<R>(
        of name: String, _ body: (UnsafeRawBufferPointer) throws(ElucidateError) -> R
    ) throws(ElucidateError) -> R {
        guard let entry = entry(name) else {
            throw ElucidateError(.invalidFormat, "archive has no entry '\(Self.printable(name))'")
        }
        guard entry.method == 0 else {
            let what = entry.method == 8 ? "deflate-compressed (method 8)" : "compressed with method \(entry.method)"
            throw ElucidateError(.unsupported,
                                 "entry '\(Self.printable(name))' is \(what); only stored (uncompressed) entries, as torch.save writes them, are supported")
        }
        let result: Result<R, ElucidateError> = data.withUnsafeBytes { raw in
            Result { () throws(ElucidateError) -> R in
                // The range was checked against the archive's size when it was parsed.
                let contents = UnsafeRawBufferPointer(rebasing: raw[entry.dataOffset..<(entry.dataOffset + entry.size)])
                let actual = Self.crc32(contents)
                guard actual == entry.crc32 else {
                    throw ElucidateError(.invalidFormat,
                                         "entry '\(Self.printable(entry.name))' is corrupt: CRC-32 \(Self.hex(actual)), expected \(Self.hex(entry.crc32))")
                }
                return try body(contents)
            }
        }
        return try result.get()
    }

    // MARK: - CRC-32 (IEEE 802.3, as in ZIP, PNG and gzip)

    /// Slicing-by-8 tables: `crcTables[k * 256 + b]`.
    private static let crcTables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            tables[byte] = crc
        }
        for byte in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[(slice - 1) * 256 + byte]
                tables[slice * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// The CRC-32 of `bytes`, continuing from `crc` (0 for a fresh checksum).
    public static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var value = ~crc
        guard let base = bytes.baseAddress else { return crc }
        let count = bytes.count
        crcTables.withUnsafeBufferPointer { table in
            var i = 0
            while i + 8 <= count {
                let low = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ value
                let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                value = table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                i += 8
            }
            while i < count {
                value = (value >> 8) ^ table[Int((value ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)]
                i += 1
            }
        }
        return ~value
    }

    /// The CRC-32 of `data`.
    public static func crc32(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { crc32($0) }
    }

    // MARK: - Writing

    /// An archive of stored (uncompressed) entries, in the given order: the layout this
    /// reader accepts, for tests and tools. Names must be unique and valid; the whole
    /// archive must stay under 4 GiB and 65 535 entries (no ZIP64).
    public static func storedArchive(_ files: [(name: String, contents: Data)]) -> Data {
        precondition(files.count < 0xFFFF, "too many entries for an archive without ZIP64")
        var archive = Data()
        var central = Data()
        func append16(_ value: Int, to data: inout Data) {
            withUnsafeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian) { data.append(contentsOf: $0) }
        }
        func append32(_ value: UInt32, to data: inout Data) {
            withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
        }
        for (name, contents) in files {
            let nameBytes = Array(name.utf8)
            let crc = crc32(contents)
            let offset = archive.count
            precondition(offset + 30 + nameBytes.count + contents.count < 0xFFFF_FFFF, "archive too large without ZIP64")
            // Local header: version 2.0, UTF-8 names, stored, no time stamp.
            append32(0x0403_4B50, to: &archive)
            append16(20, to: &archive)
            append16(0x0800, to: &archive)
            append16(0, to: &archive)
            append16(0, to: &archive)
            append16(0x21, to: &archive)  // 1980-01-01
            append32(crc, to: &archive)
            append32(UInt32(contents.count), to: &archive)
            append32(UInt32(contents.count), to: &archive)
            append16(nameBytes.count, to: &archive)
            append16(0, to: &archive)
            archive.append(contentsOf: nameBytes)
            archive.append(contents)

            append32(0x0201_4B50, to: &central)
            append16(0x031E, to: &central)  // made by: Unix, version 3.0
            append16(20, to: &central)
            append16(0x0800, to: &central)
            append16(0, to: &central)
            append16(0, to: &central)
            append16(0x21, to: &central)
            append32(crc, to: &central)
            append32(UInt32(contents.count), to: &central)
            append32(UInt32(contents.count), to: &central)
            append16(nameBytes.count, to: &central)
            append16(0, to: &central)  // extra
            append16(0, to: &central)  // comment
            append16(0, to: &central)  // disk
            append16(0, to: &central)  // internal attributes
            append32(0o100644 << 16, to: &central)
            append32(UInt32(offset), to: &central)
            central.append(contentsOf: nameBytes)
        }
        let centralOffset = archive.count
        archive.append(central)
        append32(0x0605_4B50, to: &archive)
        append16(0, to: &archive)
        append16(0, to: &archive)
        append16(files.count, to: &archive)
        append16(files.count, to: &archive)
        append32(UInt32(central.count), to: &archive)
        append32(UInt32(centralOffset), to: &archive)
        append16(0, to: &archive)
        return archive
    }

    // MARK: - Parsing

    private static let endRecordSignature: UInt32 = 0x0605_4B50
    private static let zip64EndRecordSignature: UInt32 = 0x0606_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let centralHeaderSignature: UInt32 = 0x0201_4B50
    private static let localHeaderSignature: UInt32 = 0x0403_4B50

    /// Bounds-checked little-endian reads from the archive.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer

        func has(_ offset: Int, _ length: Int) -> Bool {
            offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
        }

        func u16(_ offset: Int) -> Int {
            Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        }

        func u32(_ offset: Int) -> UInt32 {
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }

        func u64(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }

        func slice(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        }
    }

    private static func fail(_ message: String) -> ElucidateError {
        ElucidateError(.invalidFormat, message)
    }

    /// Where the central directory is and how many entries it has.
    private struct Directory {
        var offset: Int
        var size: Int
        var count: Int
        /// Where the central directory must end: the ZIP64 end record, or the end record.
        var end: Int
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(ElucidateError) -> [Entry] {
        let reader = Reader(bytes: bytes)
        let directory = try findDirectory(reader)
        var entries: [Entry] = []
        entries.reserveCapacity(directory.count)
        var names = Set<String>()
        // (start of local header, end of data) of each entry, to check for overlaps.
        var spans: [(start: Int, end: Int, name: String)] = []
        var position = directory.offset
        for number in 0..<directory.count {
            guard reader.has(position, 46), position + 46 <= directory.end else {
                throw fail("central directory ends inside entry \(number + 1) of \(directory.count)")
            }
            guard reader.u32(position) == centralHeaderSignature else {
                throw fail("central directory entry \(number + 1) has a bad signature at byte \(position)")
            }
            let flags = reader.u16(position + 8)
            let method = reader.u16(position + 10)
            let crc = reader.u32(position + 16)
            var compressedSize = UInt64(reader.u32(position + 20))
            var size = UInt64(reader.u32(position + 24))
            let nameLength = reader.u16(position + 28)
            let extraLength = reader.u16(position + 30)
            let commentLength = reader.u16(position + 32)
            var disk = UInt64(reader.u16(position + 34))
            var localOffset = UInt64(reader.u32(position + 42))
            let variableLength = nameLength + extraLength + commentLength
            guard reader.has(position + 46, variableLength), position + 46 + variableLength <= directory.end else {
                throw fail("central directory ends inside entry \(number + 1) of \(directory.count)")
            }
            let nameBytes = reader.slice(position + 46, nameLength)
            let name = try validatedName(nameBytes)
            guard names.insert(name).inserted else {
                throw fail("archive names '\(printable(name))' twice")
            }

            // ZIP64 extra field: 8-byte values for each field saturated at its maximum.
            var extraPosition = position + 46 + nameLength
            let extraEnd = extraPosition + extraLength
            while extraPosition < extraEnd {
                guard extraEnd - extraPosition >= 4 else {
                    throw fail("entry '\(printable(name))': truncated extra field")
                }
                let id = reader.u16(extraPosition)
                let length = reader.u16(extraPosition + 2)
                let dataStart = extraPosition + 4
                guard length <= extraEnd - dataStart else {
                    throw fail("entry '\(printable(name))': extra field runs past its header")
                }
                if id == 0x0001 {
                    var field = dataStart
                    let fieldEnd = dataStart + length
                    func next() throws(ElucidateError) -> UInt64 {
                        guard fieldEnd - field >= 8 else {
                            throw fail("entry '\(printable(name))': ZIP64 extra field too short")
                        }
                        defer { field += 8 }
                        return reader.u64(field)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                    if disk == 0xFFFF {
                        guard fieldEnd - field >= 4 else {
                            throw fail("entry '\(printable(name))': ZIP64 extra field too short")
                        }
                        disk = UInt64(reader.u32(field))
                    }
                }
                extraPosition = dataStart + length
            }

            guard flags & 0x0001 == 0, flags & 0x0040 == 0, flags & 0x2000 == 0 else {
                throw ElucidateError(.unsupported, "entry '\(printable(name))' is encrypted")
            }
            // Other methods are refused when the entry is read (see `withContents`), so
            // that an archive of another kind (TorchScript) can still be recognised.
            guard disk == 0 else {
                throw ElucidateError(.unsupported, "entry '\(printable(name))' is on disk \(disk): multi-disk archives are not supported")
            }
            guard method != 0 || compressedSize == size else {
                throw fail("stored entry '\(printable(name))' has compressed size \(compressedSize) ≠ size \(size)")
            }
            guard localOffset < UInt64(directory.offset), compressedSize <= UInt64(directory.offset),
                  size <= UInt64(Int.max) else {
                throw fail("entry '\(printable(name))' lies outside the archive's data (offset \(localOffset), size \(compressedSize))")
            }
            let local = Int(localOffset)
            let dataSize = Int(compressedSize)

            // The local header must agree with the central directory.
            guard reader.has(local, 30), local + 30 <= directory.offset,
                  reader.u32(local) == localHeaderSignature else {
                throw fail("entry '\(printable(name))': no local header at byte \(local)")
            }
            let localFlags = reader.u16(local + 6)
            let localMethod = reader.u16(local + 8)
            let localNameLength = reader.u16(local + 26)
            let localExtraLength = reader.u16(local + 28)
            let dataOffset = local + 30 + localNameLength + localExtraLength
            guard dataOffset <= directory.offset, dataSize <= directory.offset - dataOffset else {
                throw fail("entry '\(printable(name))' runs into the central directory")
            }
            guard localMethod == method, localNameLength == nameLength,
                  reader.has(local + 30, nameLength), reader.slice(local + 30, nameLength).elementsEqual(nameBytes) else {
                throw fail("entry '\(printable(name))': local header does not match the central directory")
            }
            if localFlags & 0x0008 == 0 {
                // No data descriptor: the local header carries the CRC and sizes itself
                // (sizes may be saturated when a ZIP64 extra field holds them).
                let localCRC = reader.u32(local + 14)
                let localCompressed = UInt64(reader.u32(local + 18))
                let localSize = UInt64(reader.u32(local + 22))
                guard localCRC == crc,
                      localCompressed == compressedSize || localCompressed == 0xFFFF_FFFF,
                      localSize == size || localSize == 0xFFFF_FFFF else {
                    throw fail("entry '\(printable(name))': local header does not match the central directory")
                }
            }
            entries.append(Entry(name: name, size: Int(size), crc32: crc, dataOffset: dataOffset, method: method,
                                 storedSize: dataSize))
            spans.append((local, dataOffset + dataSize, name))
            position += 46 + variableLength
        }
        guard position == directory.offset + directory.size else {
            throw fail("central directory is \(directory.size) bytes but its \(directory.count) entries fill \(position - directory.offset)")
        }

        // Entries may not overlap one another (the first one starts the archive).
        spans.sort { $0.start < $1.start }
        let firstStart = spans.first?.start ?? directory.offset
        guard firstStart == 0 else {
            throw fail("archive has \(firstStart) unexplained bytes before its first entry")
        }
        for (previous, next) in zip(spans, spans.dropFirst()) where next.start < previous.end {
            throw fail("entries '\(printable(previous.name))' and '\(printable(next.name))' overlap")
        }
        return entries
    }

    /// Finds the end record (and ZIP64 record) and checks the directory's position.
    private static func findDirectory(_ reader: Reader) throws(ElucidateError) -> Directory {
        let count = reader.bytes.count
        guard count >= 22 else {
            throw fail("not a zip archive: \(count) bytes, shorter than an end-of-central-directory record")
        }
        // The end record is the last 22 bytes plus a comment of up to 65 535 bytes; take
        // the last candidate whose comment length reaches exactly the end of the file.
        var endRecord = -1
        var candidate = count - 22
        let lowest = max(0, count - 22 - 0xFFFF)
        while candidate >= lowest {
            if reader.u32(candidate) == endRecordSignature && candidate + 22 + reader.u16(candidate + 20) == count {
                endRecord = candidate
                break
            }
            candidate -= 1
        }
        guard endRecord >= 0 else {
            throw fail("not a zip archive: no end-of-central-directory record")
        }
        let disk = reader.u16(endRecord + 4)
        let directoryDisk = reader.u16(endRecord + 6)
        let entriesOnDisk = reader.u16(endRecord + 8)
        var entries = UInt64(reader.u16(endRecord + 10))
        var size = UInt64(reader.u32(endRecord + 12))
        var offset = UInt64(reader.u32(endRecord + 16))
        var end = endRecord

        let locator = endRecord - 20
        if locator >= 0 && reader.u32(locator) == zip64LocatorSignature {
            let recordDisk = reader.u32(locator + 4)
            let recordOffset = reader.u64(locator + 8)
            let disks = reader.u32(locator + 16)
            guard recordDisk == 0, disks <= 1 else {
                throw ElucidateError(.unsupported, "multi-disk zip archives are not supported")
            }
            guard recordOffset <= UInt64(locator), reader.has(Int(recordOffset), 56),
                  Int(recordOffset) + 56 <= locator else {
                throw fail("ZIP64 end record offset \(recordOffset) is outside the archive")
            }
            let record = Int(recordOffset)
            guard reader.u32(record) == zip64EndRecordSignature else {
                throw fail("no ZIP64 end record where the ZIP64 locator points (byte \(record))")
            }
            let recordSize = reader.u64(record + 4)
            guard recordSize >= 44, recordSize <= UInt64(locator - record - 12),
                  Int(recordSize) + 12 == locator - record else {
                throw fail("ZIP64 end record has a bad size (\(recordSize))")
            }
            guard reader.u32(record + 16) == 0, reader.u32(record + 20) == 0,
                  reader.u64(record + 24) == reader.u64(record + 32) else {
                throw ElucidateError(.unsupported, "multi-disk zip archives are not supported")
            }
            entries = reader.u64(record + 32)
            size = reader.u64(record + 40)
            offset = reader.u64(record + 48)
            end = record
        } else {
            guard disk == 0, directoryDisk == 0, entriesOnDisk == Int(entries) else {
                throw ElucidateError(.unsupported, "multi-disk zip archives are not supported")
            }
            guard entries != 0xFFFF, size != 0xFFFF_FFFF, offset != 0xFFFF_FFFF else {
                throw fail("end record says ZIP64 but the ZIP64 locator is missing")
            }
        }
        guard offset <= UInt64(end), size <= UInt64(end), offset + size == UInt64(end) else {
            throw fail("central directory (offset \(offset), \(size) bytes) does not end where the end record starts (byte \(end))")
        }
        guard entries <= UInt64(maximumEntryCount), entries * 46 <= size else {
            throw fail("central directory of \(size) bytes cannot hold \(entries) entries")
        }
        return Directory(offset: Int(offset), size: Int(size), count: Int(entries), end: end)
    }

    /// The entry name as a string, refusing anything that could escape a folder.
    private static func validatedName(_ bytes: UnsafeRawBufferPointer) throws(ElucidateError) -> String {
        guard !bytes.isEmpty else { throw fail("archive has an entry with an empty name") }
        guard bytes.count <= maximumNameLength else {
            throw fail("archive has an entry name of \(bytes.count) bytes (at most \(maximumNameLength))")
        }
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw fail("archive has an entry name that is not valid UTF-8")
        }
        // The escaped name is made only for a refusal: every entry of every archive passes here.
        guard !name.hasPrefix("/"), !name.unicodeScalars.contains(where: { $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F }) else {
            throw fail("unsafe entry name '\(printable(name))'")
        }
        var components = name.split(separator: "/", omittingEmptySubsequences: false)
        if name.hasSuffix("/") { components.removeLast() }  // a folder entry
        // A drive letter ("c:") would make the name absolute on Windows.
        let first = components.first.map(Array.init) ?? []
        let driveLetter = first.count == 2 && first[1] == ":" && first[0].isLetter
        guard !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), !driveLetter else {
            throw fail("unsafe entry name '\(printable(name))'")
        }
        return name
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// `text` with control characters escaped, for one-line messages; long texts are cut.
    static func printable(_ text: String, limit: Int = 200) -> String {
        TerminalText.escaped(text, limit: limit)
    }
}
