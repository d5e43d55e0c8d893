import ElucidateCore
import Foundation

/// The contents of a `.npy` file.
public enum NPYArray: Sendable {
    /// A `'<f4'` array: its shape and values in C order.
    case float32(Tensor)
    /// A `'<i4'` array: `values` in C order, `values.count` = product of `shape`.
    case int32(shape: [Int], values: [Int32])

    /// Dimensions, outermost first (`[]` for a scalar).
    public var shape: [Int] {
        switch self {
        case .float32(let tensor): tensor.shape
        case .int32(let shape, _): shape
        }
    }

    /// The numpy dtype descriptor: `'<f4'` or `'<i4'`.
    public var descr: String {
        switch self {
        case .float32: "<f4"
        case .int32: "<i4"
        }
    }
}

/// Reads and writes numpy `.npy` files (format versions 1.0, 2.0, 3.0).
///
/// Supported: dtypes `'<f4'` (float32) and `'<i4'` (int32), C order, any shape including
/// scalars `()` and zero-size dimensions. Anything else (other dtypes, big-endian data,
/// Fortran order, object or structured arrays) is refused with a clear error rather than
/// misread. Files are written like `numpy.save`, byte for byte: version 1.0 (2.0 if the
/// header needs it), header padded with spaces to a multiple of 64 bytes and ended by `\n`.
public enum NPY {
    /// The largest header accepted (numpy's own default limit is 10 000 characters).
    public static let maximumHeaderLength = 1 << 20

    // MARK: Reading

    /// Parses a whole `.npy` file held in memory. Errors carry no path (see `read`).
    ///
    /// - Throws: `.invalidFormat` (bad magic, truncated, malformed header, data size not
    ///   matching the shape) or `.unsupported` (another dtype, big-endian, Fortran order,
    ///   unknown format version).
    public static func parse(_ data: Data) throws(ElucidateError) -> NPYArray {
        let result: Result<NPYArray, ElucidateError> = data.withUnsafeBytes { raw in
            Result { () throws(ElucidateError) -> NPYArray in try parse(raw) }
        }
        return try result.get()
    }

    /// Reads a `.npy` file; errors name `url`'s path.
    public static func read(_ url: URL) throws(ElucidateError) -> NPYArray {
        let data = try readFileBytes(url, expected: "a .npy file")
        do {
            return try parse(data)
        } catch {
            throw error.at(url.path)
        }
    }

    /// Reads a `.npy` file that must hold float32 (`'<f4'`) data.
    public static func readFloat32(_ url: URL) throws(ElucidateError) -> Tensor {
        switch try read(url) {
        case .float32(let tensor):
            return tensor
        case .int32(let shape, _):
            throw ElucidateError(.unsupported,
                                 "holds int32 ('<i4') data of shape \(shapeText(shape)) where float32 ('<f4') is expected",
                                 path: url.path)
        }
    }

    /// `readFloat32` for data a model will consume (inputs, baselines): a NaN or infinity is
    /// refused, naming the file, `what` it is ("the input tensor") and the first bad element.
    public static func readFiniteFloat32(_ url: URL, what: String) throws(ElucidateError) -> Tensor {
        let tensor = try readFloat32(url)
        do { try tensor.requireFinite(what, advice: "it must hold finite numbers only") } catch { throw error.at(url.path) }
        return tensor
    }

    /// Reads a `.npy` file that must hold int32 (`'<i4'`) data.
    public static func readInt32(_ url: URL) throws(ElucidateError) -> (shape: [Int], values: [Int32]) {
        switch try read(url) {
        case .int32(let shape, let values):
            return (shape, values)
        case .float32(let tensor):
            throw ElucidateError(.unsupported,
                                 "holds float32 ('<f4') data of shape \(shapeText(tensor.shape)) where int32 ('<i4') is expected",
                                 path: url.path)
        }
    }

    // MARK: Writing

    /// The `.npy` bytes of `tensor` (`'<f4'`, C order, the tensor's shape).
    public static func encode(_ tensor: Tensor) -> Data {
        var data = header(descr: "<f4", shape: tensor.shape)
        tensor.withUnsafeBufferPointer { values in appendLittleEndian(values, to: &data) }
        return data
    }

    /// The `.npy` bytes of an int32 array (`'<i4'`, C order); `values.count` must equal
    /// the product of `shape`.
    public static func encode(int32 values: [Int32], shape: [Int]) -> Data {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        var data = header(descr: "<i4", shape: shape)
        values.withUnsafeBufferPointer { appendLittleEndian($0, to: &data) }
        return data
    }

    /// Writes `tensor` as a `.npy` file, atomically (see `AtomicFile`); refuses to
    /// overwrite any of `protectedInputs`.
    public static func write(_ tensor: Tensor, to url: URL, protectedInputs: [URL] = []) throws(ElucidateError) {
        do {
            try AtomicFile.write(encode(tensor), to: url, protectedInputs: protectedInputs)
        } catch {
            throw error.at(url.path)
        }
    }

    /// Writes an int32 array as a `.npy` file, atomically.
    public static func write(int32 values: [Int32], shape: [Int], to url: URL,
                             protectedInputs: [URL] = []) throws(ElucidateError) {
        do {
            try AtomicFile.write(encode(int32: values, shape: shape), to: url, protectedInputs: protectedInputs)
        } catch {
            throw error.at(url.path)
        }
    }

    // MARK: - Private: writing

    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    static func shapeText(_ shape: [Int]) -> String {
        switch shape.count {
        case 0: "()"
        case 1: "(\(shape[0]),)"
        default: "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
    }

    /// numpy's `_write_array_header`: sorted keys, spare spaces for growing the first
    /// axis, then `_wrap_header` padding to a multiple of 64 bytes.
    private static func header(descr: String, shape: [Int]) -> Data {
        var text = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText(shape)), }"
        if let first = shape.first {
            text += String(repeating: " ", count: max(0, 21 - String(first).count))
        }
        var body = Array(text.utf8)
        // Version 1.0 stores the header length in 2 bytes; 2.0 (4 bytes) only when needed.
        func padding(prefixLength: Int) -> Int { 64 - (prefixLength + body.count + 1) % 64 }
        let version: UInt8 = body.count + 1 + padding(prefixLength: 10) <= 0xFFFF ? 1 : 2
        let padding = padding(prefixLength: version == 1 ? 10 : 12)
        body += [UInt8](repeating: 0x20, count: padding)
        body.append(0x0A)
        var data = Data(magic)
        data.append(contentsOf: [version, 0])
        if version == 1 {
            data.append(contentsOf: [UInt8(body.count & 0xFF), UInt8(body.count >> 8)])
        } else {
            data.append(contentsOf: (0..<4).map { UInt8(truncatingIfNeeded: body.count >> (8 * $0)) })
        }
        data.append(contentsOf: body)
        return data
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ values: UnsafeBufferPointer<T>, to data: inout Data) {
        #if _endian(little)
        data.append(UnsafeBufferPointer(start: UnsafeRawPointer(values.baseAddress)?.assumingMemoryBound(to: UInt8.self),
                                        count: values.count * MemoryLayout<T>.size))
        #else
        for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        #endif
    }

    private static func appendLittleEndian(_ values: UnsafeBufferPointer<Float>, to data: inout Data) {
        values.withMemoryRebound(to: UInt32.self) { appendLittleEndian($0, to: &data) }
    }

    // MARK: - Private: reading

    private enum ElementType {
        case float32, int32
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer) throws(ElucidateError) -> NPYArray {
        guard !bytes.isEmpty else {
            throw ElucidateError(.invalidFormat, "empty file: not a .npy file")
        }
        let head = Array(bytes.prefix(magic.count))
        guard head == Array(magic.prefix(head.count)) else {
            throw ElucidateError(.invalidFormat, "not a .npy file (bad magic bytes)")
        }
        guard bytes.count >= 10 else {
            throw ElucidateError(.invalidFormat, "truncated .npy file: it ends inside the header")
        }
        let major = bytes[6], minor = bytes[7]
        guard minor == 0, (1...3).contains(major) else {
            throw ElucidateError(.unsupported, "unsupported .npy format version \(major).\(minor) (1.0, 2.0 and 3.0 are supported)")
        }
        let lengthSize = major == 1 ? 2 : 4
        guard bytes.count >= 8 + lengthSize else {
            throw ElucidateError(.invalidFormat, "truncated .npy file: it ends inside the header")
        }
        var headerLength = 0
        for i in 0..<lengthSize { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        let headerStart = 8 + lengthSize
        guard headerLength <= maximumHeaderLength else {
            throw ElucidateError(.invalidFormat, "the .npy header claims \(headerLength) bytes, more than the \(maximumHeaderLength) allowed")
        }
        guard bytes.count - headerStart >= headerLength else {
            throw ElucidateError(.invalidFormat,
                                 "truncated .npy file: the header needs \(headerLength) bytes, the file has \(bytes.count - headerStart) after the preamble")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[headerStart..<(headerStart + headerLength)])
        let (elementType, shape, count) = try parseHeader(headerBytes, utf8: major == 3, version1: major == 1)

        let dataStart = headerStart + headerLength
        let available = bytes.count - dataStart
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: 4)
        guard !overflow, byteCount <= available else {
            throw ElucidateError(.invalidFormat,
                                 "truncated .npy file: shape \(shapeText(shape)) needs \(overflow ? "more than \(Int.max)" : String(byteCount)) bytes of data, the file has \(available)")
        }
        guard byteCount == available else {
            throw ElucidateError(.invalidFormat,
                                 "\(available - byteCount) unexpected bytes after the data of shape \(shapeText(shape)) (expected \(byteCount) bytes)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[dataStart...])
        switch elementType {
        case .float32:
            let storage = TensorStorage(count: count)
            if count > 0, let src = payload.baseAddress {
                UnsafeMutableRawPointer(storage.pointer).copyMemory(from: src, byteCount: byteCount)
                #if _endian(big)
                UnsafeMutableRawPointer(storage.pointer).withMemoryRebound(to: UInt32.self, capacity: count) { p in
                    for i in 0..<count { p[i] = UInt32(littleEndian: p[i]) }
                }
                #endif
            }
            return .float32(Tensor(shape: shape, storage: storage))
        case .int32:
            let values = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0, let dst = buffer.baseAddress, let src = payload.baseAddress {
                    UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: byteCount)
                    #if _endian(big)
                    for i in 0..<count { dst[i] = Int32(littleEndian: dst[i]) }
                    #endif
                }
                initialized = count
            }
            return .int32(shape: shape, values: values)
        }
    }

    /// Validates the header dictionary; returns the element type, shape and element count.
    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, utf8: Bool, version1: Bool)
        throws(ElucidateError) -> (ElementType, [Int], Int) {
        var parser = LiteralParser(bytes: Array(bytes), utf8: utf8, allowLongSuffix: version1)
        let literal = try parser.parseAll()
        guard case .dict(let entries) = literal else {
            throw ElucidateError(.invalidFormat, "malformed .npy header: not a dictionary")
        }
        var values: [String: PythonLiteral] = [:]
        for (key, value) in entries {
            guard case .string(let name) = key else {
                throw ElucidateError(.invalidFormat, "malformed .npy header: a key is not a string")
            }
            values[name] = value
        }
        guard Set(values.keys) == ["descr", "fortran_order", "shape"], values.count == entries.count else {
            throw ElucidateError(.invalidFormat,
                                 "malformed .npy header: keys are \(values.keys.sorted()), expected descr, fortran_order, shape")
        }

        guard case .tuple(let dims)? = values["shape"] else {
            throw ElucidateError(.invalidFormat, "malformed .npy header: shape is not a tuple")
        }
        var shape: [Int] = []
        var count = 1
        var countOverflow = false
        for dim in dims {
            guard case .int(let n) = dim else {
                throw ElucidateError(.invalidFormat, "malformed .npy header: shape holds a value that is not an integer")
            }
            guard let n, n >= 0 else {
                throw ElucidateError(.invalidFormat, "malformed .npy header: shape has a negative or too large dimension")
            }
            shape.append(n)
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            if overflow { countOverflow = true }
            count = product
        }
        if shape.contains(0) {
            count = 0
        } else if countOverflow {
            throw ElucidateError(.invalidFormat, "malformed .npy header: shape \(shapeText(shape)) has too many elements")
        }

        guard case .bool(let fortranOrder)? = values["fortran_order"] else {
            throw ElucidateError(.invalidFormat, "malformed .npy header: fortran_order is not True or False")
        }

        let elementType: ElementType
        switch values["descr"] {
        case .string(let descr)?:
            elementType = try self.elementType(descr)
        case .list?, .tuple?:
            throw ElucidateError(.unsupported, "structured arrays (record dtypes) are not supported; only '<f4' (float32) and '<i4' (int32)")
        default:
            throw ElucidateError(.invalidFormat, "malformed .npy header: descr is not a dtype string")
        }
        // Fortran order only changes the layout when two or more dimensions exceed 1.
        if fortranOrder && shape.filter({ $0 > 1 }).count > 1 {
            throw ElucidateError(.unsupported,
                                 "Fortran-order (column-major) arrays are not supported; save a C-order array (numpy.ascontiguousarray)")
        }
        return (elementType, shape, count)
    }

    private static func elementType(_ descr: String) throws(ElucidateError) -> ElementType {
        let supported = "only '<f4' (float32) and '<i4' (int32) are supported"
        #if _endian(little)
        let nativeOK = true
        #else
        let nativeOK = false
        #endif
        switch descr {
        case "<f4": return .float32
        case "<i4": return .int32
        case "=f4" where nativeOK: return .float32
        case "=i4" where nativeOK: return .int32
        default: break
        }
        var chars = Array(descr)
        var order: Character = "|"
        if let first = chars.first, "<>=|".contains(first) {
            order = first
            chars.removeFirst()
        }
        let kind = chars.first.map(String.init) ?? ""
        let size = String(chars.dropFirst())
        if kind == "O" {
            throw ElucidateError(.unsupported, "object arrays (dtype '\(ZipArchive.printable(descr))') are not supported; \(supported)")
        }
        if order == ">" && (kind == "f" || kind == "i") && size == "4" {
            throw ElucidateError(.unsupported, "big-endian data (dtype '\(ZipArchive.printable(descr))') is not supported; \(supported)")
        }
        let names: [String: String] = [
            "f": "float", "i": "int", "u": "uint", "b": "bool", "c": "complex", "U": "unicode string",
            "S": "byte string", "a": "byte string", "V": "void/raw", "M": "datetime", "m": "timedelta",
        ]
        if let name = names[kind], let bytes = Int(size), bytes > 0, bytes <= 64 {
            let bits = (kind == "f" || kind == "i" || kind == "u" || kind == "c") ? "\(name)\(bytes * 8)" : name
            let endian = order == ">" ? "big-endian " : ""
            throw ElucidateError(.unsupported, "dtype '\(ZipArchive.printable(descr))' (\(endian)\(bits)) is not supported; \(supported)")
        }
        throw ElucidateError(.unsupported, "dtype '\(ZipArchive.printable(descr))' is not supported; \(supported)")
    }
}

// MARK: - A minimal Python literal parser for .npy headers

/// The subset of Python literals `ast.literal_eval` accepts that .npy headers use.
private indirect enum PythonLiteral {
    case string(String)
    /// nil when the literal does not fit in `Int`.
    case int(Int?)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([(PythonLiteral, PythonLiteral)])
}

private struct LiteralParser {
    let bytes: [UInt8]
    let utf8: Bool
    let allowLongSuffix: Bool
    var position = 0
    var depth = 0
    static let maximumDepth = 32

    init(bytes: [UInt8], utf8: Bool, allowLongSuffix: Bool) {
        self.bytes = bytes
        self.utf8 = utf8
        self.allowLongSuffix = allowLongSuffix
    }

    private func failure(_ what: String) -> ElucidateError {
        ElucidateError(.invalidFormat, "malformed .npy header: \(what) at byte \(position)")
    }

    mutating func parseAll() throws(ElucidateError) -> PythonLiteral {
        let value = try parseValue()
        skipSpace()
        guard position == bytes.count else { throw failure("unexpected text after the dictionary") }
        return value
    }

    private mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(bytes[position]) {
            position += 1
        }
    }

    private mutating func parseValue() throws(ElucidateError) -> PythonLiteral {
        skipSpace()
        guard position < bytes.count else { throw failure("unexpected end") }
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw failure("nesting too deep") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            position += 1
            var entries: [(PythonLiteral, PythonLiteral)] = []
            while true {
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; break }
                let key = try parseValue()
                skipSpace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                position += 1
                let value = try parseValue()
                entries.append((key, value))
                skipSpace()
                guard position < bytes.count else { throw failure("unexpected end") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                guard bytes[position] == UInt8(ascii: "}") else { throw failure("expected ',' or '}'") }
                position += 1
                break
            }
            return .dict(entries)
        case UInt8(ascii: "("), UInt8(ascii: "["):
            let isTuple = bytes[position] == UInt8(ascii: "(")
            let close = isTuple ? UInt8(ascii: ")") : UInt8(ascii: "]")
            position += 1
            var items: [PythonLiteral] = []
            var sawComma = false
            while true {
                skipSpace()
                if position < bytes.count, bytes[position] == close { position += 1; break }
                items.append(try parseValue())
                skipSpace()
                guard position < bytes.count else { throw failure("unexpected end") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; sawComma = true; continue }
                guard bytes[position] == close else { throw failure("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
                position += 1
                break
            }
            if !isTuple { return .list(items) }
            // "(3)" is the integer 3 in parentheses; "(3,)" and "()" are tuples.
            if items.count == 1 && !sawComma { return items[0] }
            return .tuple(items)
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .int(try parseInt())
        default:
            let start = position
            while position < bytes.count, isIdentifierByte(bytes[position]) { position += 1 }
            switch String(decoding: bytes[start..<position], as: UTF8.self) {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                position = start
                throw failure("unexpected character")
            }
        }
    }

    private func isIdentifierByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
    }

    private mutating func parseString() throws(ElucidateError) -> String {
        let quote = bytes[position]
        position += 1
        var content: [UInt8] = []
        while true {
            guard position < bytes.count else { throw failure("unterminated string") }
            let b = bytes[position]
            position += 1
            if b == quote { break }
            if b == 0x0A { throw failure("newline inside a string") }
            if b == UInt8(ascii: "\\") {
                guard position < bytes.count else { throw failure("unterminated string") }
                let escaped = bytes[position]
                position += 1
                switch escaped {
                case UInt8(ascii: "n"): content.append(0x0A)
                case UInt8(ascii: "t"): content.append(0x09)
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): content.append(escaped)
                default: content.append(contentsOf: [UInt8(ascii: "\\"), escaped])
                }
                continue
            }
            content.append(b)
        }
        if utf8 {
            guard let text = String(validating: content, as: UTF8.self) else { throw failure("invalid UTF-8 in a string") }
            return text
        }
        // Versions 1.0 and 2.0 use latin-1: each byte is one code point.
        return String(String.UnicodeScalarView(content.map { Unicode.Scalar($0) }))
    }

    private mutating func parseInt() throws(ElucidateError) -> Int? {
        var negative = false
        if bytes[position] == UInt8(ascii: "-") || bytes[position] == UInt8(ascii: "+") {
            negative = bytes[position] == UInt8(ascii: "-")
            position += 1
            skipSpace()
        }
        let start = position
        var value: Int? = 0
        while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
            let digit = Int(bytes[position] - UInt8(ascii: "0"))
            if let v = value {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(digit)
                value = (o1 || o2) ? nil : s
            }
            position += 1
        }
        guard position > start else { throw failure("expected a number") }
        if allowLongSuffix, position < bytes.count, bytes[position] == UInt8(ascii: "L") || bytes[position] == UInt8(ascii: "l") {
            position += 1  // Python 2 long literal, e.g. "(3L, 4L)"
        }
        if position < bytes.count, isIdentifierByte(bytes[position]) || bytes[position] == UInt8(ascii: ".") {
            throw failure("not an integer")
        }
        guard let value else { return nil }
        return negative ? -value : value
    }
}
