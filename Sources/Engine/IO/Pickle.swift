import ElucidateCore
import Foundation

// A restricted unpickler for the `data.pkl` of a torch.save checkpoint.
//
// It never executes anything: there is no import, no call, no attribute lookup. A
// GLOBAL names one of a fixed list of callables and classes, each of which it knows how
// to rebuild as plain data (a dict, a tensor reference, ...); any other name stops the
// load on the spot, at its GLOBAL opcode, before anything after it is read:
//
//   collections.OrderedDict                          an (ordered) dict
//   torch._utils._rebuild_tensor_v2, _rebuild_tensor a tensor: storage, offset, size, stride
//   torch._utils._rebuild_parameter(_with_state)     an nn.Parameter: its tensor
//   torch.{Float,Half,BFloat16,Double}Storage        float storages (kept)
//   torch.{Long,Int,Short,Char,Byte,Bool}Storage     integer storages (read, then dropped)
//   torch.float32, torch.int64, ...                  dtype names
//
// and, beside the weights only, a few inert data types that checkpoints commonly carry
// next to the state dict (fastai's `learn.save` stores the optimizer's hyper-parameters
// in a `fastcore.foundation.L` of numpy scalars; training scripts store their
// `argparse.Namespace`). They are read as opaque values and their contents dropped; a
// tensor position that holds one is refused later:
//
//   fastcore.foundation.L, argparse.Namespace, torch.device,
//   numpy.dtype, numpy.ndarray, numpy.(_)core.multiarray.{scalar,_reconstruct},
//   _codecs.encode (how protocol 2 spells a bytes object)
//
// Persistent ids are torch's storage references ('storage', storage type, key,
// location, element count); `storageCheck` vets each against the archive.
//
// Hostile input cannot crash it, hang it or exhaust memory: the stack, the memo, the
// element count of all containers, tuple nesting and integer sizes are bounded, a work
// budget proportional to the input bounds the time, and lists and dicts live in an
// arena (values refer to them by index), so self-referencing structures create no cycles
// and freeing them never recurses.

/// A storage element type, named after its legacy storage class.
enum TorchDType: String, Sendable, CaseIterable {
    case float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage", float64 = "DoubleStorage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage"
    case uint8 = "ByteStorage", bool = "BoolStorage"

    /// Bytes per element.
    var size: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// Converted to float32 and kept; integer tensors are dropped.
    var isFloat: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: true
        default: false
        }
    }
}

/// A storage a persistent id names: `<archive>/data/<key>`, `count` elements of `dtype`.
struct TorchStorageRef: Sendable, Equatable {
    let dtype: TorchDType
    let key: String
    let count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view of a storage. Bounds are checked
/// when it is made: every element it addresses lies inside the storage.
final class TorchTensorRef: Sendable {
    let storage: TorchStorageRef
    let offset: Int
    let shape: [Int]
    let stride: [Int]
    /// Product of `shape`.
    let count: Int

    init(storage: TorchStorageRef, offset: Int, shape: [Int], stride: [Int], count: Int) {
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride
        self.count = count
    }
}

/// A callable or class a GLOBAL may name.
enum PickleGlobal: Sendable, Equatable {
    case orderedDict
    case rebuildTensor, rebuildTensorV2, rebuildParameter, rebuildParameterWithState
    case storageType(TorchDType)
    /// `torch.float32` and friends: a value, not a callable.
    case torchDType(String)
    /// `_codecs.encode(text, 'latin1')`: bytes, in protocols 0–2.
    case codecsEncode
    /// A data type tolerated beside the weights, read as an opaque object.
    case inert(String)

    var name: String {
        switch self {
        case .orderedDict: "collections.OrderedDict"
        case .rebuildTensor: "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: "torch._utils._rebuild_parameter_with_state"
        case .storageType(let dtype): "torch.\(dtype.rawValue)"
        case .torchDType(let name): "torch.\(name)"
        case .codecsEncode: "_codecs.encode"
        case .inert(let name): name
        }
    }
}

/// An immutable tuple; `depth` is its nesting (1 for a tuple of scalars).
final class PickleTuple: Sendable {
    let items: [PickleValue]
    let depth: Int

    init(_ items: [PickleValue], depth: Int) {
        self.items = items
        self.depth = depth
    }
}

/// A value of the unpickled document. Lists and dicts are indices into the document's
/// arena, so that the memo and later mutations (APPEND, SETITEM) share them as Python does.
enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(Int)
    case dict(Int)
    case global(PickleGlobal)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRef)
    /// An inert object of a tolerated type (its contents are dropped).
    case object(String)

    /// Python's name for the value's type, for messages.
    var typeName: String {
        switch self {
        case .none: "None"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .bytes: "bytes"
        case .tuple: "tuple"
        case .list: "list"
        case .dict: "dict"
        case .global(let global): global.name
        case .storage(let storage): "torch.\(storage.dtype.rawValue)"
        case .tensor: "tensor"
        case .object(let name): name
        }
    }
}

/// A dict of the arena, in insertion order; string and integer keys are unique.
struct PickleDict: Sendable {
    enum Key: Hashable { case string(String), int(Int) }

    private(set) var keys: [PickleValue] = []
    private(set) var values: [PickleValue] = []
    private var index: [Key: Int] = [:]

    var count: Int { keys.count }

    static func hashKey(_ key: PickleValue) -> Key? {
        switch key {
        case .string(let text): .string(text)
        case .int(let value): .int(value)
        case .bool(let value): .int(value ? 1 : 0)
        default: nil
        }
    }

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        if let hashed = Self.hashKey(key) {
            if let existing = index[hashed] {
                values[existing] = value
                return
            }
            index[hashed] = keys.count
        }
        keys.append(key)
        values.append(value)
    }

    /// The value under string key `key`, or nil.
    subscript(key: String) -> PickleValue? {
        index[.string(key)].map { values[$0] }
    }
}

/// The result of unpickling: the root value and the arena its lists and dicts live in.
struct PickleDocument: Sendable {
    let root: PickleValue
    let lists: [[PickleValue]]
    let dicts: [PickleDict]
}

/// The restricted unpickler (see the top of this file).
struct Unpickler {
    /// Items on the stack at once (real checkpoints: a few thousand).
    static let maximumStackDepth = 1 << 20
    /// Memo entries (real checkpoints: about ten per tensor).
    static let maximumMemoCount = 1 << 22
    /// Elements held by all lists, dicts and tuples together.
    static let maximumElementCount = 1 << 23
    /// Nesting of tuples within tuples (real checkpoints: 3).
    static let maximumTupleDepth = 64
    /// Dimensions of a tensor.
    static let maximumRank = 64
    /// Longest module or class name of a GLOBAL.
    static let maximumGlobalNameLength = 1_024

    private let bytes: UnsafeRawBufferPointer
    private let storageCheck: (TorchStorageRef) throws(ElucidateError) -> Void
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var lists: [[PickleValue]] = []
    private var dicts: [PickleDict] = []
    private var elementCount = 0
    private var work = 0
    private let workBudget: Int
    /// Start of the opcode being run, for messages.
    private var opcodeStart = 0

    /// Unpickles `bytes`. `storageCheck` is called for each storage a persistent id names
    /// and may refuse it (missing from the archive, too short).
    static func load(
        _ bytes: UnsafeRawBufferPointer,
        storageCheck: @escaping (TorchStorageRef) throws(ElucidateError) -> Void = { _ throws(ElucidateError) in }
    ) throws(ElucidateError) -> PickleDocument {
        var unpickler = Unpickler(bytes: bytes, storageCheck: storageCheck)
        let root = try unpickler.run()
        return PickleDocument(root: root, lists: unpickler.lists, dicts: unpickler.dicts)
    }

    /// `load` on a `Data`.
    static func load(
        _ data: Data,
        storageCheck: @escaping (TorchStorageRef) throws(ElucidateError) -> Void = { _ throws(ElucidateError) in }
    ) throws(ElucidateError) -> PickleDocument {
        let result: Result<PickleDocument, ElucidateError> = data.withUnsafeBytes { raw in
            Result { () throws(ElucidateError) -> PickleDocument in try load(raw, storageCheck: storageCheck) }
        }
        return try result.get()
    }

    private init(bytes: UnsafeRawBufferPointer, storageCheck: @escaping (TorchStorageRef) throws(ElucidateError) -> Void) {
        self.bytes = bytes
        self.storageCheck = storageCheck
        self.workBudget = (1 << 26) + 32 * bytes.count
    }

    // MARK: - Errors

    private func fail(_ message: String) -> ElucidateError {
        ElucidateError(.invalidFormat, "data.pkl: \(message) (byte \(opcodeStart))")
    }

    private func unsupported(_ message: String) -> ElucidateError {
        ElucidateError(.unsupported, "data.pkl: \(message) (byte \(opcodeStart))")
    }

    /// The refusal of a GLOBAL outside the allow-list, with advice when the file looks
    /// like a whole pickled model rather than its weights.
    private func refusal(_ name: String) -> ElucidateError {
        var message = "refuses to load '\(ZipArchive.printable(name))': only state dicts (tensors in dicts) are supported"
        if Self.looksLikePickledModel(name, in: bytes) {
            message += "; this looks like a whole pickled model (learn.export() or torch.save(model)); save the weights instead: "
                + "torch.save(learn.model.state_dict(), 'weights.pth') or learn.save('weights')"
        }
        return ElucidateError(.unsupported, message)
    }

    /// A fastai Learner, a torch.nn module, or any class whose pickle also names torch.nn modules.
    static func looksLikePickledModel(_ name: String, in bytes: UnsafeRawBufferPointer) -> Bool {
        for prefix in ["fastai.", "torch.nn.", "torchvision.models.", "timm.models."] where name.hasPrefix(prefix) {
            return true
        }
        for marker in ["torch.nn.modules", "fastai.learner"] where contains(bytes, Array(marker.utf8)) {
            return true
        }
        return false
    }

    private static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return false }
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }

    // MARK: - Reading bytes

    private mutating func readByte() throws(ElucidateError) -> UInt8 {
        guard position < bytes.count else { throw fail("truncated") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func read(_ count: Int) throws(ElucidateError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - position else {
            throw fail("truncated: needs \(count) bytes, \(bytes.count - position) left")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    private mutating func readUInt16() throws(ElucidateError) -> Int {
        Int(UInt16(littleEndian: try read(2).loadUnaligned(as: UInt16.self)))
    }

    private mutating func readUInt32() throws(ElucidateError) -> UInt32 {
        UInt32(littleEndian: try read(4).loadUnaligned(as: UInt32.self))
    }

    private mutating func readUInt64() throws(ElucidateError) -> UInt64 {
        UInt64(littleEndian: try read(8).loadUnaligned(as: UInt64.self))
    }

    /// A length field that must fit in what is left of the input.
    private mutating func length(_ value: UInt64) throws(ElucidateError) -> Int {
        guard value <= UInt64(bytes.count - position) else {
            throw fail("truncated: a length of \(value) runs past the end")
        }
        return Int(value)
    }

    /// A line ending in "\n" (protocol 0 arguments), without the newline.
    private mutating func readLine(limit: Int = 4_096) throws(ElucidateError) -> UnsafeRawBufferPointer {
        let start = position
        while position < bytes.count && bytes[position] != 0x0A {
            position += 1
            guard position - start <= limit else { throw fail("line longer than \(limit) bytes") }
        }
        guard position < bytes.count else { throw fail("truncated: unterminated line") }
        defer { position += 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
    }

    private mutating func charge(_ units: Int) throws(ElucidateError) {
        work += units
        guard work <= workBudget else { throw fail("too much work for its size; refusing to go on") }
    }

    private mutating func utf8(_ raw: UnsafeRawBufferPointer) throws(ElucidateError) -> String {
        try charge(raw.count / 16 + 1)
        guard let text = String(validating: raw, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return text
    }

    // MARK: - Stack

    private mutating func push(_ value: PickleValue) throws(ElucidateError) {
        guard stack.count < Self.maximumStackDepth else {
            throw fail("stack deeper than \(Self.maximumStackDepth) items")
        }
        stack.append(value)
    }

    /// Items below the last MARK are out of reach until it is popped, as in Python.
    private mutating func pop() throws(ElucidateError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else {
            throw fail("stack underflow")
        }
        return value
    }

    private func top() throws(ElucidateError) -> PickleValue {
        guard let value = stack.last, stack.count > (marks.last ?? 0) else { throw fail("stack underflow") }
        return value
    }

    /// The items pushed since the last MARK, which is removed.
    private mutating func popMark() throws(ElucidateError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw fail("no MARK to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        try charge(items.count)
        return items
    }

    private mutating func addElements(_ count: Int) throws(ElucidateError) {
        elementCount += count
        guard elementCount <= Self.maximumElementCount else {
            throw fail("more than \(Self.maximumElementCount) elements in containers")
        }
    }

    private mutating func makeTuple(_ items: [PickleValue]) throws(ElucidateError) -> PickleValue {
        var depth = 1
        for case .tuple(let inner) in items { depth = max(depth, inner.depth + 1) }
        guard depth <= Self.maximumTupleDepth else {
            throw fail("tuples nested deeper than \(Self.maximumTupleDepth)")
        }
        try addElements(items.count)
        return .tuple(PickleTuple(items, depth: depth))
    }

    private mutating func newList(_ items: [PickleValue] = []) throws(ElucidateError) -> PickleValue {
        try addElements(items.count + 1)
        lists.append(items)
        return .list(lists.count - 1)
    }

    private mutating func newDict() throws(ElucidateError) -> PickleValue {
        try addElements(1)
        dicts.append(PickleDict())
        return .dict(dicts.count - 1)
    }

    private mutating func setItems(_ pairs: ArraySlice<PickleValue>, in target: PickleValue) throws(ElucidateError) {
        guard case .dict(let id) = target else {
            throw fail("SETITEM on a \(target.typeName), not a dict")
        }
        guard pairs.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
        try addElements(pairs.count / 2)
        var i = pairs.startIndex
        while i < pairs.endIndex {
            let key = pairs[i]
            switch key {
            case .list, .dict: throw fail("unhashable dict key (\(key.typeName))")
            case .string(let text): try charge(text.utf8.count / 8 + 1)
            default: try charge(1)
            }
            dicts[id].set(key, pairs[i + 1])
            i += 2
        }
    }

    private mutating func append(_ items: [PickleValue], to target: PickleValue) throws(ElucidateError) {
        guard case .list(let id) = target else {
            throw fail("APPEND to a \(target.typeName), not a list")
        }
        try addElements(items.count)
        lists[id].append(contentsOf: items)
    }

    private mutating func memoize(_ index: Int) throws(ElucidateError) {
        let value = try top()
        guard memo.count < Self.maximumMemoCount || memo[index] != nil else {
            throw fail("more than \(Self.maximumMemoCount) memo entries")
        }
        memo[index] = value
    }

    private mutating func recall(_ index: Int) throws(ElucidateError) {
        guard let value = memo[index] else { throw fail("memo entry \(index) is not defined") }
        try push(value)
    }

    // MARK: - The machine

    private mutating func run() throws(ElucidateError) -> PickleValue {
        while true {
            opcodeStart = position
            let opcode = try readByte()
            try charge(1)
            switch opcode {
            case 0x80:  // PROTO
                let version = try readByte()
                guard version <= 5 else { throw unsupported("pickle protocol \(version) (at most 5 is known)") }
            case 0x95:  // FRAME: a hint for buffered readers; the contents follow inline.
                _ = try length(try readUInt64())
            case 0x2E:  // STOP
                let value = try pop()
                return value
            case 0x28:  // MARK
                guard marks.count < Self.maximumStackDepth else { throw fail("too many MARKs") }
                marks.append(stack.count)
            case 0x30:  // POP
                if stack.count > (marks.last ?? 0) {
                    stack.removeLast()
                } else {
                    _ = try popMark()
                }
            case 0x31:  // POP_MARK
                _ = try popMark()
            case 0x32:  // DUP
                try push(try top())

            // Scalars
            case 0x4E: try push(.none)  // NONE
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4A:  // BININT
                try push(.int(Int(Int32(bitPattern: try readUInt32()))))
            case 0x4B:  // BININT1
                try push(.int(Int(try readByte())))
            case 0x4D:  // BININT2
                try push(.int(try readUInt16()))
            case 0x8A:  // LONG1
                try push(.int(try readLong(Int(try readByte()))))
            case 0x8B:  // LONG4
                let count = Int32(bitPattern: try readUInt32())
                guard count >= 0 else { throw fail("LONG4 with a negative length") }
                try push(.int(try readLong(Int(count))))
            case 0x47:  // BINFLOAT (big endian)
                let bits = UInt64(bigEndian: try read(8).loadUnaligned(as: UInt64.self))
                try push(.float(Double(bitPattern: bits)))
            case 0x49:  // INT (text; I00/I01 are False/True)
                let text = String(decoding: try readLine(limit: 64), as: UTF8.self)
                if text == "00" { try push(.bool(false)) } else if text == "01" { try push(.bool(true)) } else {
                    guard let value = Int(text) else { throw fail("INT '\(ZipArchive.printable(text))' is not an integer that fits 64 bits") }
                    try push(.int(value))
                }
            case 0x4C:  // LONG (text, optional L suffix)
                var text = String(decoding: try readLine(limit: 64), as: UTF8.self)
                if text.hasSuffix("L") { text.removeLast() }
                guard let value = Int(text) else { throw fail("LONG '\(ZipArchive.printable(text))' is not an integer that fits 64 bits") }
                try push(.int(value))
            case 0x46:  // FLOAT (text)
                let text = String(decoding: try readLine(limit: 64), as: UTF8.self)
                guard let value = Double(text) else { throw fail("FLOAT '\(ZipArchive.printable(text))' is not a number") }
                try push(.float(value))

            // Strings and bytes
            case 0x58:  // BINUNICODE
                try push(.string(try utf8(try read(try length(UInt64(try readUInt32()))))))
            case 0x8C:  // SHORT_BINUNICODE
                try push(.string(try utf8(try read(Int(try readByte())))))
            case 0x8D:  // BINUNICODE8
                try push(.string(try utf8(try read(try length(try readUInt64())))))
            case 0x56:  // UNICODE (protocol 0: raw-unicode-escape)
                try push(.string(try rawUnicodeEscape(try readLine(limit: 1 << 20))))
            case 0x54:  // BINSTRING (Python 2 str, read as UTF-8 text as torch.load does)
                let count = Int32(bitPattern: try readUInt32())
                guard count >= 0 else { throw fail("BINSTRING with a negative length") }
                try push(.string(try utf8(try read(Int(count)))))
            case 0x55:  // SHORT_BINSTRING
                try push(.string(try utf8(try read(Int(try readByte())))))
            case 0x42:  // BINBYTES
                try push(try bytesValue(try read(try length(UInt64(try readUInt32())))))
            case 0x43:  // SHORT_BINBYTES
                try push(try bytesValue(try read(Int(try readByte()))))
            case 0x8E, 0x96:  // BINBYTES8, BYTEARRAY8
                try push(try bytesValue(try read(try length(try readUInt64()))))

            // Containers
            case 0x29: try push(try makeTuple([]))  // EMPTY_TUPLE
            case 0x85: try push(try makeTuple([try pop()]))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                try push(try makeTuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try push(try makeTuple([a, b, c]))
            case 0x74:  // TUPLE
                try push(try makeTuple(try popMark()))
            case 0x5D: try push(try newList())  // EMPTY_LIST
            case 0x6C:  // LIST
                try push(try newList(try popMark()))
            case 0x7D: try push(try newDict())  // EMPTY_DICT
            case 0x64:  // DICT
                let items = try popMark()
                let dict = try newDict()
                try setItems(items[...], in: dict)
                try push(dict)
            case 0x61:  // APPEND
                let value = try pop()
                try append([value], to: try top())
            case 0x65:  // APPENDS
                let items = try popMark()
                try append(items, to: try top())
            case 0x73:  // SETITEM
                let value = try pop(), key = try pop()
                try setItems([key, value][...], in: try top())
            case 0x75:  // SETITEMS
                let items = try popMark()
                try setItems(items[...], in: try top())

            // Memo
            case 0x71: try memoize(Int(try readByte()))  // BINPUT
            case 0x72: try memoize(Int(try readUInt32()))  // LONG_BINPUT
            case 0x94: try memoize(memo.count)  // MEMOIZE
            case 0x70:  // PUT (text)
                try memoize(try decimalIndex(try readLine(limit: 32)))
            case 0x68: try recall(Int(try readByte()))  // BINGET
            case 0x6A: try recall(Int(try readUInt32()))  // LONG_BINGET
            case 0x67:  // GET (text)
                try recall(try decimalIndex(try readLine(limit: 32)))

            // Globals, calls and objects
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try globalNamePart(try readLine(limit: Self.maximumGlobalNameLength))
                let name = try globalNamePart(try readLine(limit: Self.maximumGlobalNameLength))
                try push(.global(try resolve(module: module, name: name)))
            case 0x93:  // STACK_GLOBAL
                let nameValue = try pop(), moduleValue = try pop()
                guard case .string(let module) = moduleValue, case .string(let name) = nameValue else {
                    throw fail("STACK_GLOBAL needs two strings, got \(moduleValue.typeName) and \(nameValue.typeName)")
                }
                guard module.utf8.count <= Self.maximumGlobalNameLength, name.utf8.count <= Self.maximumGlobalNameLength else {
                    throw fail("global name longer than \(Self.maximumGlobalNameLength) bytes")
                }
                try push(.global(try resolve(module: module, name: name)))
            case 0x52:  // REDUCE
                let arguments = try pop(), callable = try pop()
                try push(try reduce(callable, arguments))
            case 0x81:  // NEWOBJ
                let arguments = try pop(), type = try pop()
                try push(try newObject(type, arguments))
            case 0x92:  // NEWOBJ_EX
                _ = try pop()  // keyword arguments
                let arguments = try pop(), type = try pop()
                try push(try newObject(type, arguments))
            case 0x62:  // BUILD
                let state = try pop()
                try build(try top(), state)
            case 0x51:  // BINPERSID
                try push(try persistentLoad(try pop()))

            case 0x50: throw unsupported("text persistent id (PERSID); torch.save writes BINPERSID")
            case 0x69, 0x6F: throw unsupported("class instantiation (INST/OBJ) is not part of a state dict")
            case 0x82, 0x83, 0x84: throw unsupported("extension-registry globals (EXT1/2/4) are not part of a state dict")
            case 0x8F, 0x90, 0x91: throw unsupported("sets are not part of a state dict")
            case 0x97, 0x98: throw unsupported("out-of-band buffers are not part of a state dict")
            case 0x53: throw unsupported("quoted string (STRING) from protocol 0 Python 2 pickles")
            default:
                throw fail("unknown pickle opcode 0x\(String(opcode, radix: 16))")
            }
        }
    }

    /// A little-endian two's-complement integer of `count` bytes (LONG1/LONG4).
    private mutating func readLong(_ count: Int) throws(ElucidateError) -> Int {
        let raw = try read(count)
        guard count <= 8 else {
            // Larger encodings are fine when they only sign-extend a 64-bit value.
            let sign: UInt8 = count > 0 && raw[7] & 0x80 != 0 ? 0xFF : 0
            guard raw[8...].allSatisfy({ $0 == sign }) else { throw fail("integer wider than 64 bits") }
            return try readLongValue(UnsafeRawBufferPointer(rebasing: raw[0..<8]))
        }
        return try readLongValue(raw)
    }

    private func readLongValue(_ raw: UnsafeRawBufferPointer) throws(ElucidateError) -> Int {
        guard !raw.isEmpty else { return 0 }
        var value: UInt64 = 0
        for (i, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        if raw.count < 8 && raw[raw.count - 1] & 0x80 != 0 {
            value |= ~0 << (8 * UInt64(raw.count))  // sign-extend
        }
        return Int(Int64(bitPattern: value))
    }

    private mutating func bytesValue(_ raw: UnsafeRawBufferPointer) throws(ElucidateError) -> PickleValue {
        try charge(raw.count / 16 + 1)
        return .bytes(Array(raw))
    }

    private func decimalIndex(_ raw: UnsafeRawBufferPointer) throws(ElucidateError) -> Int {
        guard let value = Int(String(decoding: raw, as: UTF8.self)), value >= 0 else {
            throw fail("memo index is not a non-negative integer")
        }
        return value
    }

    private mutating func globalNamePart(_ raw: UnsafeRawBufferPointer) throws(ElucidateError) -> String {
        try utf8(raw)
    }

    /// Protocol 0's UNICODE argument: Latin-1 bytes with \uXXXX and \UXXXXXXXX escapes.
    private mutating func rawUnicodeEscape(_ raw: UnsafeRawBufferPointer) throws(ElucidateError) -> String {
        try charge(raw.count / 16 + 1)
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < raw.count {
            let byte = raw[i]
            if byte == 0x5C, i + 1 < raw.count, raw[i + 1] == 0x75 || raw[i + 1] == 0x55 {
                let digits = raw[i + 1] == 0x75 ? 4 : 8
                guard i + 2 + digits <= raw.count,
                      let code = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: raw[(i + 2)..<(i + 2 + digits)]), as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(code) else {
                    throw fail("bad \\u escape in UNICODE")
                }
                scalars.append(scalar)
                i += 2 + digits
            } else {
                scalars.append(Unicode.Scalar(byte))
                i += 1
            }
        }
        return String(scalars)
    }

    // MARK: - Globals

    static let inertTypes: Set<String> = [
        "fastcore.foundation.L", "argparse.Namespace", "torch.device",
        "numpy.dtype", "numpy.ndarray",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    ]

    static let torchDTypeNames: Set<String> = [
        "float32", "float", "float16", "half", "bfloat16", "float64", "double",
        "int64", "long", "int32", "int", "int16", "short", "int8", "uint8", "bool",
    ]

    /// The allowed global `module.name`, or the refusal.
    private func resolve(module: String, name: String) throws(ElucidateError) -> PickleGlobal {
        let full = "\(module).\(name)"
        switch full {
        case "collections.OrderedDict": return .orderedDict
        case "torch._utils._rebuild_tensor_v2": return .rebuildTensorV2
        case "torch._utils._rebuild_tensor": return .rebuildTensor
        case "torch._utils._rebuild_parameter": return .rebuildParameter
        case "torch._utils._rebuild_parameter_with_state": return .rebuildParameterWithState
        case "_codecs.encode": return .codecsEncode
        default: break
        }
        if module == "torch" {
            if let dtype = TorchDType(rawValue: name) { return .storageType(dtype) }
            if Self.torchDTypeNames.contains(name) { return .torchDType(name) }
        }
        if Self.inertTypes.contains(full) { return .inert(full) }
        throw refusal(full)
    }

    private func arguments(_ value: PickleValue, of global: PickleGlobal) throws(ElucidateError) -> [PickleValue] {
        guard case .tuple(let tuple) = value else {
            throw fail("arguments of \(global.name) are a \(value.typeName), not a tuple")
        }
        return tuple.items
    }

    private mutating func reduce(_ callable: PickleValue, _ argumentValue: PickleValue) throws(ElucidateError) -> PickleValue {
        guard case .global(let global) = callable else {
            throw fail("REDUCE calls a \(callable.typeName), which is not callable here")
        }
        let args = try arguments(argumentValue, of: global)
        switch global {
        case .orderedDict:
            guard args.isEmpty else { throw unsupported("collections.OrderedDict with arguments") }
            return try newDict()
        case .rebuildTensorV2:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard args.count == 6 || args.count == 7 else {
                throw fail("\(global.name) takes 6 or 7 arguments, got \(args.count)")
            }
            guard case .bool = args[4] else { throw fail("\(global.name): requires_grad is a \(args[4].typeName)") }
            return try rebuildTensor(args[0], args[1], args[2], args[3], global)
        case .rebuildTensor:
            guard args.count == 4 else { throw fail("\(global.name) takes 4 arguments, got \(args.count)") }
            return try rebuildTensor(args[0], args[1], args[2], args[3], global)
        case .rebuildParameter, .rebuildParameterWithState:
            let expected = global == .rebuildParameter ? 3 : 4
            guard args.count == expected else {
                throw fail("\(global.name) takes \(expected) arguments, got \(args.count)")
            }
            guard case .tensor = args[0] else { throw fail("\(global.name) of a \(args[0].typeName), not a tensor") }
            return args[0]
        case .codecsEncode:
            guard args.count == 2, case .string(let text) = args[0], case .string(let encoding) = args[1] else {
                throw fail("_codecs.encode takes a string and an encoding")
            }
            try charge(text.utf8.count / 16 + 1)
            switch encoding.lowercased() {
            case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
                var result: [UInt8] = []
                result.reserveCapacity(text.unicodeScalars.count)
                for scalar in text.unicodeScalars {
                    guard scalar.value <= 0xFF else { throw fail("_codecs.encode: text is not Latin-1") }
                    result.append(UInt8(scalar.value))
                }
                return .bytes(result)
            case "utf-8", "utf8":
                return .bytes(Array(text.utf8))
            default:
                throw unsupported("_codecs.encode to '\(ZipArchive.printable(encoding))'")
            }
        case .inert(let name):
            try addElements(args.count)
            return .object(name)
        case .storageType, .torchDType:
            throw unsupported("\(global.name) is not called in a state dict")
        }
    }

    private mutating func newObject(_ type: PickleValue, _ argumentValue: PickleValue) throws(ElucidateError) -> PickleValue {
        guard case .global(let global) = type else {
            throw fail("NEWOBJ of a \(type.typeName), not a class")
        }
        let args = try arguments(argumentValue, of: global)
        switch global {
        case .orderedDict:
            guard args.isEmpty else { throw unsupported("collections.OrderedDict with arguments") }
            return try newDict()
        case .inert(let name):
            try addElements(args.count)
            return .object(name)
        default:
            throw unsupported("\(global.name) is not a class a state dict instantiates")
        }
    }

    /// BUILD sets an object's state: dicts (an OrderedDict's `_metadata`) and inert
    /// objects accept and drop it.
    private func build(_ target: PickleValue, _ state: PickleValue) throws(ElucidateError) {
        switch target {
        case .dict, .object:
            return
        default:
            throw fail("BUILD on a \(target.typeName)")
        }
    }

    /// ('storage', storage type, key, location, element count), as torch.save writes it.
    private mutating func persistentLoad(_ pid: PickleValue) throws(ElucidateError) -> PickleValue {
        guard case .tuple(let tuple) = pid, tuple.items.count == 5 else {
            throw fail("persistent id is not a ('storage', type, key, location, size) tuple")
        }
        let items = tuple.items
        guard case .string("storage") = items[0] else {
            var kind = items[0].typeName
            if case .string(let text) = items[0] { kind = "'\(ZipArchive.printable(text))'" }
            throw unsupported("persistent id of kind \(kind); only storages are supported")
        }
        guard case .global(.storageType(let dtype)) = items[1] else {
            throw unsupported("storage of type \(items[1].typeName); only torch.*Storage types are supported")
        }
        guard case .string(let key) = items[2], !key.isEmpty, key.utf8.count <= 256,
              !key.contains("/"), !key.contains("\\"), key != ".", key != ".." else {
            throw fail("storage key is not a simple name")
        }
        guard case .string = items[3] else { throw fail("storage location is a \(items[3].typeName), not a string") }
        guard case .int(let count) = items[4], count >= 0 else {
            throw fail("storage '\(ZipArchive.printable(key))' has an element count that is not a non-negative integer")
        }
        let reference = TorchStorageRef(dtype: dtype, key: key, count: count)
        try storageCheck(reference)
        return .storage(reference)
    }

    private func integers(_ value: PickleValue, _ what: String, _ global: PickleGlobal) throws(ElucidateError) -> [Int] {
        guard case .tuple(let tuple) = value else {
            throw fail("\(global.name): \(what) is a \(value.typeName), not a tuple")
        }
        guard tuple.items.count <= Self.maximumRank else {
            throw unsupported("\(global.name): tensors of more than \(Self.maximumRank) dimensions")
        }
        var result: [Int] = []
        result.reserveCapacity(tuple.items.count)
        for item in tuple.items {
            guard case .int(let number) = item, number >= 0 else {
                throw fail("\(global.name): \(what) must hold non-negative integers")
            }
            result.append(number)
        }
        return result
    }

    /// A tensor view, refused unless every element it addresses lies inside the storage.
    private func rebuildTensor(_ storageValue: PickleValue, _ offsetValue: PickleValue, _ sizeValue: PickleValue,
                               _ strideValue: PickleValue, _ global: PickleGlobal) throws(ElucidateError) -> PickleValue {
        guard case .storage(let storage) = storageValue else {
            throw fail("\(global.name) of a \(storageValue.typeName), not a storage")
        }
        guard case .int(let offset) = offsetValue, offset >= 0 else {
            throw fail("\(global.name): storage offset must be a non-negative integer")
        }
        let shape = try integers(sizeValue, "size", global)
        let stride = try integers(strideValue, "stride", global)
        guard shape.count == stride.count else {
            throw fail("\(global.name): size has \(shape.count) dimensions but stride \(stride.count)")
        }
        let key = ZipArchive.printable(storage.key)
        var count = 1
        var overflow = false
        for size in shape {
            (count, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { throw fail("tensor of storage '\(key)': size \(shape) overflows") }
        }
        if count == 0 {
            guard offset <= storage.count else {
                throw fail("tensor of storage '\(key)' starts at \(offset), past its \(storage.count) elements")
            }
        } else {
            // The last element addressed: offset + Σ (size - 1) · stride.
            var last = offset
            for (size, step) in zip(shape, stride) {
                let (span, spanOverflow) = (size - 1).multipliedReportingOverflow(by: step)
                let (sum, sumOverflow) = last.addingReportingOverflow(span)
                guard !spanOverflow, !sumOverflow else {
                    throw fail("tensor of storage '\(key)': size \(shape) and stride \(stride) overflow")
                }
                last = sum
            }
            guard last < storage.count else {
                throw fail("tensor of storage '\(key)' (offset \(offset), size \(shape), stride \(stride)) reaches element \(last) of a storage of \(storage.count)")
            }
        }
        return .tensor(TorchTensorRef(storage: storage, offset: offset, shape: shape, stride: stride, count: count))
    }
}
