import ElucidateCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   bytes 0..<8        N, the header length, unsigned 64-bit little endian
//   bytes 8..<8+N      the header: a UTF-8 JSON object (may end with padding spaces)
//                        { "__metadata__": { "k": "v", ... },          (optional)
//                          "<name>": { "dtype": "F32", "shape": [d0, d1, ...],
//                                      "data_offsets": [begin, end] }, ... }
//   bytes 8+N..<EOF    the byte buffer; tensor <name> is buffer[begin..<end], C order,
//                      little endian, with end - begin == product(shape) * size(dtype)
//
// Offsets need not be aligned, so every read below is an unaligned load.

/// The element types a safetensors file may declare that this reader knows.
enum SafetensorsDType: String, CaseIterable, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether `SafetensorsFile.tensor(_:)` converts it to a float32 `Tensor`.
    var isFloat: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }
}

/// A read-only safetensors file: the header is parsed and validated once, up front;
/// tensors are converted to float32 `Tensor`s on request.
///
/// Opened from a URL, the file is memory-mapped (read only, private) and stays mapped
/// until the object is released; the descriptor is closed right after mapping. As with
/// any mapping, truncating the file while it is open is undefined (SIGBUS).
///
/// Every refusal is an `ElucidateError` of kind `.invalidFormat` (malformed file) or
/// `.unsupported` (unknown dtype), one line naming the tensor, with the file's path
/// when there is one.
public final class SafetensorsFile: @unchecked Sendable {
    /// Longest header accepted, in bytes (real files have headers of kilobytes).
    public static let maximumHeaderLength = 100_000_000

    struct Entry {
        let dtype: SafetensorsDType
        let shape: [Int]
        let count: Int
        /// Offsets of the tensor's bytes relative to the start of the byte buffer.
        let begin: Int
        let end: Int
    }

    private enum Backing {
        case mapped(UnsafeMutableRawPointer, Int)
        case allocated(UnsafeMutableRawPointer)
    }

    /// The file this was opened from, or nil when parsed from bytes.
    public let path: String?
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Tensor names, sorted.
    public let names: [String]

    private let entries: [String: Entry]
    private let backing: Backing
    /// Start of the byte buffer (just past the header).
    private let buffer: UnsafeRawPointer
    private let bufferLength: Int

    /// Memory-maps and validates the file at `url`.
    public init(url: URL) throws(ElucidateError) {
        let path = url.path
        // Only a regular file, checked before it is opened (a FIFO would block, a device never end).
        let (fd, length) = try openRegularFile(url, expected: "a .safetensors file")
        guard length >= 8 else {
            close(fd)
            throw ElucidateError(.invalidFormat,
                                 "not a safetensors file: \(length) bytes, shorter than the 8-byte header length",
                                 path: path)
        }
        let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)
        let mapError = errno
        close(fd)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw ElucidateError(.unreadable, "cannot map: \(String(cString: strerror(mapError)))", path: path)
        }
        let parsed: Parsed
        do throws(ElucidateError) {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: address, count: length))
        } catch {
            munmap(address, length)
            throw error.at(path)
        }
        self.path = path
        self.backing = .mapped(address, length)
        self.metadata = parsed.metadata
        self.entries = parsed.entries
        self.names = parsed.entries.keys.sorted()
        self.buffer = UnsafeRawPointer(address) + parsed.bufferStart
        self.bufferLength = length - parsed.bufferStart
    }

    /// Validates a safetensors file held in memory (the bytes are copied).
    public init(bytes: Data) throws(ElucidateError) {
        let length = bytes.count
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(length, 1), alignment: 16)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { storage.copyMemory(from: base, byteCount: length) }
        }
        let parsed: Parsed
        do throws(ElucidateError) {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: storage, count: length))
        } catch {
            storage.deallocate()
            throw error
        }
        self.path = nil
        self.backing = .allocated(storage)
        self.metadata = parsed.metadata
        self.entries = parsed.entries
        self.names = parsed.entries.keys.sorted()
        self.buffer = UnsafeRawPointer(storage) + parsed.bufferStart
        self.bufferLength = length - parsed.bufferStart
    }

    deinit {
        switch backing {
        case .mapped(let address, let length): munmap(address, length)
        case .allocated(let storage): storage.deallocate()
        }
    }

    /// The declared dtype (e.g. `"F32"`, `"I64"`) and shape of tensor `name`, or nil.
    public func info(_ name: String) -> (dtype: String, shape: [Int])? {
        entries[name].map { ($0.dtype.rawValue, $0.shape) }
    }

    /// Tensor `name` as float32, in C order with the file's shape. F32 is copied as is;
    /// F16 and BF16 convert exactly; F64 rounds to nearest. Integer and BOOL tensors
    /// are refused (`.unsupported`), as are missing names (`.invalidArgument`).
    public func tensor(_ name: String) throws(ElucidateError) -> Tensor {
        guard let entry = entries[name] else {
            throw ElucidateError(.invalidArgument, "no tensor named '\(ZipArchive.printable(name))'", path: path)
        }
        guard entry.dtype.isFloat else {
            throw ElucidateError(.unsupported,
                                 "tensor '\(ZipArchive.printable(name))' has dtype \(entry.dtype.rawValue); only F32, F16, BF16 and F64 convert to float32",
                                 path: path)
        }
        let storage = TensorStorage(count: entry.count)
        let source = buffer + entry.begin
        let destination = storage.pointer
        switch entry.dtype {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: entry.count * 4)
            #if _endian(big)
            for i in 0..<entry.count { destination[i] = Float(bitPattern: UInt32(littleEndian: destination[i].bitPattern)) }
            #endif
        case .f16:
            for i in 0..<entry.count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = Self.floatFromHalf(bits)
            }
        case .bf16:
            for i in 0..<entry.count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .f64:
            for i in 0..<entry.count {
                let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                destination[i] = Float(Double(bitPattern: bits))
            }
        default:
            preconditionFailure("unreachable: integer dtype passed the float check")
        }
        return Tensor(shape: entry.shape, storage: storage)
    }

    /// Every float-dtype tensor (F32, F16, BF16, F64) as float32, by name. Integer and
    /// BOOL tensors, such as BatchNorm's `num_batches_tracked` (I64), are skipped.
    public func floatTensors() throws(ElucidateError) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in names where entries[name]!.dtype.isFloat {
            result[name] = try tensor(name)
        }
        return result
    }

    /// IEEE binary16 bits to Float, exactly (normals, subnormals, ±0, ±inf, NaN payloads).
    static func floatFromHalf(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits) & 0x3FF
        switch exponent {
        case 0:
            // ±0 or subnormal: mantissa × 2^-24, exact in float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }

    // MARK: - Parsing and validation

    struct Parsed {
        var metadata: [String: String]
        var entries: [String: Entry]
        /// Offset of the byte buffer from the start of the file.
        var bufferStart: Int
    }

    /// Parses and validates a whole file's bytes. Errors carry no path.
    static func parse(_ file: UnsafeRawBufferPointer) throws(ElucidateError) -> Parsed {
        guard file.count >= 8, let base = file.baseAddress else {
            throw ElucidateError(.invalidFormat,
                                 "not a safetensors file: \(file.count) bytes, shorter than the 8-byte header length")
        }
        let declared = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderLength) else {
            throw ElucidateError(.invalidFormat,
                                 "header length \(declared) is absurd (more than \(maximumHeaderLength) bytes); not a safetensors file")
        }
        let headerLength = Int(declared)
        guard headerLength <= file.count - 8 else {
            throw ElucidateError(.invalidFormat,
                                 "header length \(headerLength) runs past the end of the file (\(file.count) bytes)")
        }
        let header = UnsafeRawBufferPointer(start: base + 8, count: headerLength)
        guard String(validating: header, as: UTF8.self) != nil else {
            throw ElucidateError(.invalidFormat, "header is not valid UTF-8")
        }
        let root: JSONValue
        do throws(JSONError) {
            var parser = JSONParser(header)
            root = try parser.parseDocument()
        } catch {
            throw ElucidateError(.invalidFormat, "header is not valid JSON: \(error.message)")
        }
        guard case .object(let members) = root else {
            throw ElucidateError(.invalidFormat, "header is not a JSON object")
        }

        let bufferStart = 8 + headerLength
        let bufferLength = file.count - bufferStart
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var seen = Set<String>()
        for (name, value) in members {
            guard seen.insert(name).inserted else {
                throw ElucidateError(.invalidFormat, "header names '\(ZipArchive.printable(name))' twice")
            }
            if name == "__metadata__" {
                metadata = try parseMetadata(value)
            } else {
                entries[name] = try parseEntry(name, value, bufferLength: bufferLength)
            }
        }

        // No two tensors may share bytes. Empty tensors occupy nothing.
        let sorted = entries.filter { $0.value.begin < $0.value.end }
            .sorted { ($0.value.begin, $0.key) < ($1.value.begin, $1.key) }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.value.begin < previous.value.end {
            throw ElucidateError(.invalidFormat,
                                 "tensors '\(ZipArchive.printable(previous.key))' and '\(ZipArchive.printable(next.key))' overlap (bytes \(previous.value.begin)..<\(previous.value.end) and \(next.value.begin)..<\(next.value.end))")
        }
        return Parsed(metadata: metadata, entries: entries, bufferStart: bufferStart)
    }

    private static func parseMetadata(_ value: JSONValue) throws(ElucidateError) -> [String: String] {
        switch value {
        case .null:
            return [:]
        case .object(let pairs):
            var result: [String: String] = [:]
            for (key, item) in pairs {
                guard case .string(let text) = item else {
                    throw ElucidateError(.invalidFormat, "__metadata__ value for '\(ZipArchive.printable(key))' is not a string")
                }
                guard result.updateValue(text, forKey: key) == nil else {
                    throw ElucidateError(.invalidFormat, "__metadata__ names '\(ZipArchive.printable(key))' twice")
                }
            }
            return result
        default:
            throw ElucidateError(.invalidFormat, "__metadata__ is not an object of strings")
        }
    }

    private static func parseEntry(_ rawName: String, _ value: JSONValue, bufferLength: Int) throws(ElucidateError) -> Entry {
        let name = ZipArchive.printable(rawName)  // only for messages: names come from the file
        guard case .object(let pairs) = value else {
            throw ElucidateError(.invalidFormat, "tensor '\(name)': entry is not a JSON object")
        }
        func field(_ key: String) throws(ElucidateError) -> JSONValue {
            guard let found = pairs.first(where: { $0.0 == key }) else {
                throw ElucidateError(.invalidFormat, "tensor '\(name)' has no \"\(key)\"")
            }
            return found.1
        }
        guard case .string(let dtypeName) = try field("dtype") else {
            throw ElucidateError(.invalidFormat, "tensor '\(name)': \"dtype\" is not a string")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw ElucidateError(.unsupported, "unknown dtype '\(ZipArchive.printable(dtypeName))' for tensor '\(name)'")
        }
        guard case .array(let dimensions) = try field("shape") else {
            throw ElucidateError(.invalidFormat, "tensor '\(name)': \"shape\" is not an array")
        }
        var shape: [Int] = []
        for dimension in dimensions {
            guard case .number(let literal) = dimension, let size = nonNegativeInteger(literal) else {
                throw ElucidateError(.invalidFormat,
                                     "tensor '\(name)': shape entries must be non-negative integers")
            }
            shape.append(size)
        }
        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2,
              case .number(let beginLiteral) = offsets[0], case .number(let endLiteral) = offsets[1] else {
            throw ElucidateError(.invalidFormat, "tensor '\(name)': \"data_offsets\" is not [begin, end]")
        }
        guard let begin = nonNegativeInteger(beginLiteral), let end = nonNegativeInteger(endLiteral) else {
            throw ElucidateError(.invalidFormat,
                                 "tensor '\(name)': data_offsets must be non-negative integers")
        }
        guard begin <= end else {
            throw ElucidateError(.invalidFormat, "tensor '\(name)': data_offsets begin \(begin) > end \(end)")
        }
        guard end <= bufferLength else {
            throw ElucidateError(.invalidFormat,
                                 "tensor '\(name)' ends past the end of the file (byte \(end) of a \(bufferLength)-byte buffer)")
        }
        // The product of the non-zero dimensions must fit too, so that a zero-sized
        // tensor cannot smuggle in dimensions whose strides overflow.
        var nonZeroProduct = 1
        for size in shape {
            let (product, overflow) = nonZeroProduct.multipliedReportingOverflow(by: max(size, 1))
            guard !overflow else {
                throw ElucidateError(.invalidFormat, "tensor '\(name)': shape \(shape) overflows")
            }
            nonZeroProduct = product
        }
        let count = shape.contains(0) ? 0 : nonZeroProduct
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else {
            throw ElucidateError(.invalidFormat, "tensor '\(name)': shape \(shape) overflows")
        }
        guard byteCount == end - begin else {
            throw ElucidateError(.invalidFormat,
                                 "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(byteCount) bytes but data_offsets span \(end - begin)")
        }
        return Entry(dtype: dtype, shape: shape, count: count, begin: begin, end: end)
    }

    /// The value of a JSON number literal made only of decimal digits, if it fits in Int.
    private static func nonNegativeInteger(_ literal: String) -> Int? {
        guard !literal.isEmpty, literal.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return Int(literal)
    }
}

// MARK: - Writer

/// Writes float32 tensors as safetensors: keys sorted, tensors packed in key order,
/// header padded with spaces so the byte buffer starts at a multiple of 8.
public enum SafetensorsWriter {
    /// The whole file's bytes. Tensor names must not be `__metadata__`.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) -> Data {
        precondition(tensors["__metadata__"] == nil, "'__metadata__' is reserved in safetensors")
        var header = "{"
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            members.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        let names = tensors.keys.sorted()
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            let size = tensor.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            members.append("\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        header += members.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }

        var data = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        for name in names {
            tensors[name]!.withUnsafeBufferPointer { values in
                #if _endian(big)
                for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
                #else
                data.append(UnsafeBufferPointer(start: values.baseAddress, count: values.count))
                #endif
            }
        }
        return data
    }

    /// Encodes and writes atomically to `url` (see `AtomicFile`).
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:],
                             to url: URL) throws(ElucidateError) {
        try AtomicFile.write(encode(tensors, metadata: metadata), to: url)
    }

    /// A JSON string literal for `text`.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

// MARK: - A small JSON parser

/// A parsed JSON value. Object members keep their order (and duplicates); numbers keep
/// their literal text so integers are read without going through Double.
indirect enum JSONValue {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null
}

struct JSONError: Error {
    let message: String
}

/// A strict RFC 8259 parser over UTF-8 bytes that never traps: nesting deeper than
/// `maximumDepth` is refused instead of recursing, and every index is bounds checked.
struct JSONParser {
    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var depth = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// One value, surrounded by optional whitespace, and nothing else.
    mutating func parseDocument() throws(JSONError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw fail("unexpected data after the end") }
        return value
    }

    private func fail(_ message: String) -> JSONError {
        JSONError(message: "\(message) at byte \(position)")
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    private mutating func expect(_ literal: String) throws(JSONError) {
        for byte in literal.utf8 {
            guard current == byte else { throw fail("invalid literal") }
            position += 1
        }
    }

    private mutating func parseValue() throws(JSONError) -> JSONValue {
        guard let byte = current else { throw fail("unexpected end") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character")
        }
    }

    private mutating func enter() throws(JSONError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw fail("nesting deeper than \(Self.maximumDepth)") }
    }

    private mutating func parseObject() throws(JSONError) -> JSONValue {
        try enter()
        position += 1  // {
        var members: [(String, JSONValue)] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            skipWhitespace()
            members.append((key, try parseValue()))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; depth -= 1; return .object(members)
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws(JSONError) -> JSONValue {
        try enter()
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; depth -= 1; return .array(elements)
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws(JSONError) -> String {
        let start = position
        func isDigit(_ byte: UInt8?) -> Bool { byte.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else if isDigit(current) {
            while isDigit(current) { position += 1 }
        } else {
            throw fail("invalid number")
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard isDigit(current) else { throw fail("invalid number") }
            while isDigit(current) { position += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard isDigit(current) else { throw fail("invalid number") }
            while isDigit(current) { position += 1 }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    private mutating func parseHex4() throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw fail("unexpected end in \\u escape") }
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private mutating func parseString() throws(JSONError) -> String {
        position += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let byte = current else { throw fail("unterminated string") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                // The header was validated as UTF-8 and escapes produce valid scalars.
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escape = current else { throw fail("unterminated string") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard current == UInt8(ascii: "\\") else { throw fail("unpaired surrogate") }
                        position += 1
                        guard current == UInt8(ascii: "u") else { throw fail("unpaired surrogate") }
                        position += 1
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw fail("unpaired surrogate")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    UTF8.encode(scalar) { utf8.append($0) }
                default:
                    throw fail("invalid escape")
                }
            case 0x00..<0x20:
                throw fail("control character in string")
            default:
                utf8.append(byte)
            }
        }
    }
}
