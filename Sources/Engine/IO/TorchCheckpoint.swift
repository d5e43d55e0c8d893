import ElucidateCore
import Foundation

// PyTorch checkpoints as `torch.save` writes them since PyTorch 1.6: a ZIP archive of
// stored entries under one top-level folder (named after the file, or `archive`):
//
//   <name>/data.pkl      the pickled object; tensors appear as
//                        _rebuild_tensor_v2(storage, offset, size, stride, ...) where
//                        storage is a persistent id ('storage', torch.FloatStorage, key,
//                        location, element count)
//   <name>/data/<key>    each storage's bytes, little endian, C order
//   <name>/byteorder     "little" (absent before PyTorch 1.10: little)
//   <name>/version       the serialization format version, e.g. "3"
//
// Read natively: the ZIP with `ZipArchive`, `data.pkl` with the restricted `Unpickler`,
// which executes nothing and refuses any global outside a short allow-list (unlike
// `torch.load` without `weights_only`).

/// Reads `torch.save` checkpoints (`.pth`, `.pt`) into a `StateDict`.
///
/// Accepted: a state dict at the top level, or under `model`, `state_dict` or
/// `model_state_dict` (fastai's `learn.save`, common training scripts), with float32,
/// float16, bfloat16 and float64 tensors (converted to float32; integer tensors such as
/// `num_batches_tracked` are dropped), non-contiguous views and views sharing a storage.
/// A `module.` prefix on every key (DataParallel) is removed.
///
/// Refused, each with one clear line: pickles naming any other global (a whole pickled
/// model from `learn.export()` or `torch.save(model)`, or anything executable such as
/// `os.system`), the legacy pre-1.6 format, TorchScript archives, big-endian files,
/// compressed or corrupt archives, tensors that reach outside their storage.
public enum TorchCheckpoint {
    /// Keys under which a checkpoint may hold its state dict, in order of preference.
    public static let wrapperKeys = ["state_dict", "model_state_dict", "model"]

    /// Reads the checkpoint at `url`; errors name the file.
    public static func load(_ url: URL) throws(ElucidateError) -> StateDict {
        let data = try readFileBytes(url, expected: "a .pth checkpoint")
        do {
            return try parse(data)
        } catch {
            throw error.at(url.path)
        }
    }

    /// Parses a whole checkpoint held in memory. Errors carry no path (see `load`).
    public static func parse(_ data: Data) throws(ElucidateError) -> StateDict {
        try checkSignature(data)
        let archive = try ZipArchive(bytes: data)
        let root = try rootFolder(archive)

        if let entry = archive.entry("\(root)/byteorder") {
            guard entry.size <= 16 else { throw ElucidateError(.invalidFormat, "byteorder record is \(entry.size) bytes long") }
            let order = String(decoding: try archive.contents(of: entry.name), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            switch order {
            case "little": break
            case "big":
                throw ElucidateError(.unsupported,
                                     "was saved on a big-endian machine (byteorder 'big'); only little-endian checkpoints are supported")
            default:
                throw ElucidateError(.invalidFormat, "byteorder record says '\(ZipArchive.printable(order))'")
            }
        }

        let pickle = try archive.contents(of: "\(root)/data.pkl")
        let document = try Unpickler.load(pickle) { (storage: TorchStorageRef) throws(ElucidateError) in
            let name = "\(root)/data/\(storage.key)"
            guard let entry = archive.entry(name) else {
                throw ElucidateError(.invalidFormat, "storage '\(ZipArchive.printable(storage.key))' has no record '\(ZipArchive.printable(name))'")
            }
            let (needed, overflow) = storage.count.multipliedReportingOverflow(by: storage.dtype.size)
            guard !overflow, needed <= entry.size else {
                throw ElucidateError(.invalidFormat,
                                     "storage '\(ZipArchive.printable(storage.key))' of \(storage.count) \(storage.dtype.rawValue) elements needs \(overflow ? "more" : "\(needed)") bytes but its record has \(entry.size)")
            }
        }
        let entries = try selectStateDict(document)
        let tensors = try materialize(entries, archive: archive, root: root)
        return StateDict(tensors).strippingPrefix("module.")
    }

    /// Whether `prefix` (a file's first bytes, 32 are enough) starts like a torch.save
    /// file: a ZIP archive, the legacy (pre-1.6) pickle format, or any other binary pickle
    /// (protocol 2 or later, as `pickle.dump` writes; `parse` refuses it with advice).
    public static func looksLikeCheckpoint(_ prefix: Data) -> Bool {
        let head = [UInt8](prefix.prefix(32))
        return head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || isLegacy(head) || isPickle(head)
    }

    /// `looksLikeCheckpoint` on the file at `url`; false when it cannot be read or is not
    /// a regular file (checked without blocking: a FIFO is never waited on).
    public static func looksLikeCheckpoint(at url: URL) -> Bool {
        guard let (fd, _) = try? openRegularFile(url) else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 32)
        var count = 0
        while count < head.count {
            let got = head.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { break }
            count += got
        }
        return looksLikeCheckpoint(Data(head[..<count]))
    }

    // MARK: - Format checks

    /// The legacy format starts with a pickled magic number: PROTO, (FRAME), LONG1 of
    /// 10 bytes 0x1950a86a20f9469cfc6c.
    static func isLegacy(_ head: [UInt8]) -> Bool {
        guard head.count >= 2, head[0] == 0x80, (2...5).contains(head[1]) else { return false }
        var i = 2
        if head.count > i, head[i] == 0x95 { i += 9 }
        let magic: [UInt8] = [0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
        return head.count >= i + magic.count && Array(head[i..<(i + magic.count)]) == magic
    }

    /// A binary pickle: PROTO 2…5, then an opcode. Not a safetensors file whose header
    /// length happens to start 80 02…80 05 (640 to 1408 bytes): its third byte is 0 for any
    /// header under 64 KiB, and its ninth opens the JSON header, `{`.
    static func isPickle(_ head: [UInt8]) -> Bool {
        head.count >= 3 && head[0] == 0x80 && (2...5).contains(head[1]) && head[2] != 0
            && !(head.count > 8 && head[8] == UInt8(ascii: "{"))
    }

    private static func checkSignature(_ data: Data) throws(ElucidateError) {
        let head = [UInt8](data.prefix(512))
        if head.starts(with: [0x50, 0x4B]) { return }  // a ZIP archive: ZipArchive judges it
        if isLegacy(head) || (head.count >= 262 && Array(head[257..<262]) == Array("ustar".utf8)) {
            throw ElucidateError(.unsupported,
                                 "is a legacy PyTorch checkpoint (saved before PyTorch 1.6 or with _use_new_zipfile_serialization=False), not a zip archive; re-save it with a current PyTorch: torch.save(torch.load('old.pth', weights_only=True), 'new.pth')")
        }
        if head.count >= 2, head[0] == 0x80, head[1] <= 5 {
            throw ElucidateError(.unsupported,
                                 "is a plain Python pickle (as pickle.dump writes), not a PyTorch zip checkpoint; re-save it with a current "
                                 + "PyTorch: torch.save(pickle.load(open('old.pkl', 'rb')), 'new.pth') (only if you trust the file: unpickling runs code)")
        }
        if head.isEmpty { throw ElucidateError(.invalidFormat, "not a PyTorch checkpoint: the file is empty") }
        let shown = head.prefix(4).map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: " ")
        throw ElucidateError(.invalidFormat,
                             "not a PyTorch checkpoint: torch.save writes a zip archive (starting with 'PK'), this file starts with \(shown)")
    }

    /// The folder holding `data.pkl`; refuses archives that are not torch.save's.
    private static func rootFolder(_ archive: ZipArchive) throws(ElucidateError) -> String {
        let pickles = archive.entries.map(\.name).filter { name in
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl"
        }
        guard let first = pickles.first else {
            throw ElucidateError(.invalidFormat,
                                 "zip archive without a '<name>/data.pkl' entry: not a torch.save checkpoint")
        }
        guard pickles.count == 1 else {
            throw ElucidateError(.invalidFormat,
                                 "zip archive holds \(pickles.count) data.pkl entries ('\(ZipArchive.printable(pickles[0]))', '\(ZipArchive.printable(pickles[1]))'); torch.save writes one")
        }
        let root = String(first.dropLast("/data.pkl".count))
        if archive.entry("\(root)/constants.pkl") != nil || archive.entries.contains(where: { $0.name.hasPrefix("\(root)/code/") }) {
            throw ElucidateError(.unsupported,
                                 "is a TorchScript archive (torch.jit.save), not a state dict; save the weights instead: torch.save(model.state_dict(), 'weights.pth')")
        }
        return root
    }

    // MARK: - Finding the state dict

    private static func describe(_ value: PickleValue) -> String {
        switch value {
        case .tensor: "a single tensor"
        case .object(let name), .global(PickleGlobal.inert(let name)): "a '\(ZipArchive.printable(name))' object"
        case .none: "None"
        default: "a \(value.typeName)"
        }
    }

    /// The (key, tensor) pairs of the state dict: the top-level dict, or the dict under a
    /// wrapper key when the top level is not itself a dict of tensors.
    static func selectStateDict(_ document: PickleDocument) throws(ElucidateError) -> [(String, TorchTensorRef)] {
        guard case .dict(var id) = document.root else {
            throw ElucidateError(.invalidFormat, "holds \(describe(document.root)), not a state dict (a dict of tensors)")
        }
        func isTensorDict(_ dict: PickleDict) -> Bool {
            dict.count > 0 && dict.values.allSatisfy { if case .tensor = $0 { true } else { false } }
        }
        var path: [String] = []
        while path.count < 4 && !isTensorDict(document.dicts[id]) {
            let dict = document.dicts[id]
            var inner: (String, Int)?
            for key in wrapperKeys {
                if case .dict(let found)? = dict[key] { inner = (key, found); break }
            }
            guard let (key, found) = inner else { break }
            path.append(key)
            id = found
        }
        let dict = document.dicts[id]
        let place = path.isEmpty ? "the top-level dict" : "['" + path.joined(separator: "']['") + "']"
        let advice = path.isEmpty ? "; a state dict is expected at the top level or under 'model' or 'state_dict'" : ""
        guard dict.count > 0 else {
            throw ElucidateError(.invalidFormat, "\(place) is empty: no tensors\(advice)")
        }
        var result: [(String, TorchTensorRef)] = []
        result.reserveCapacity(dict.count)
        for (key, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = key else {
                throw ElucidateError(.invalidFormat, "\(place) is not a state dict: it has a key of type \(key.typeName)\(advice)")
            }
            guard case .tensor(let tensor) = value else {
                var keys = dict.keys.prefix(8).map { key -> String in
                    if case .string(let text) = key { return "'\(ZipArchive.printable(text, limit: 40))'" }
                    return key.typeName
                }
                if dict.count > 8 { keys.append("…") }
                throw ElucidateError(.invalidFormat,
                                     "\(place) is not a state dict: '\(ZipArchive.printable(name))' is \(describe(value)), not a tensor (keys: \(keys.joined(separator: ", ")))\(advice)")
            }
            result.append((name, tensor))
        }
        return result
    }

    // MARK: - Tensors

    /// Float tensors as float32, read from their storages (integer tensors are dropped).
    private static func materialize(_ entries: [(String, TorchTensorRef)], archive: ZipArchive,
                                    root: String) throws(ElucidateError) -> [String: Tensor] {
        let floats = entries.filter { $0.1.storage.dtype.isFloat }
        // Views may repeat a storage's elements (shared storages, stride 0); bound how far
        // a small file can make them expand.
        var storageElements: [String: Int] = [:]
        var total = 0
        for (_, tensor) in floats {
            storageElements[tensor.storage.key] = max(storageElements[tensor.storage.key] ?? 0, tensor.storage.count)
            total = total.addingReportingOverflow(tensor.count).overflow ? Int.max : total + tensor.count
        }
        let backing = storageElements.values.reduce(0) { $0.addingReportingOverflow($1).overflow ? Int.max / 8 : $0 + $1 }
        let allowed = min(Int.max / 8, backing) * 4 + (1 << 22)
        guard total <= allowed else {
            throw ElucidateError(.invalidFormat,
                                 "tensors would expand to \(total) elements from storages of \(backing); refusing views that repeat their storage so often")
        }

        var groups: [String: [(String, TorchTensorRef)]] = [:]
        var order: [String] = []
        for entry in floats {
            if groups[entry.1.storage.key] == nil { order.append(entry.1.storage.key) }
            groups[entry.1.storage.key, default: []].append(entry)
        }
        var tensors: [String: Tensor] = [:]
        for key in order {
            try archive.withContents(of: "\(root)/data/\(key)") { (bytes: UnsafeRawBufferPointer) throws(ElucidateError) in
                for (name, reference) in groups[key] ?? [] {
                    tensors[name] = tensor(reference, from: bytes)
                }
            }
        }
        return tensors
    }

    /// The tensor a (bounds-checked) view addresses, converted to float32, in C order.
    static func tensor(_ reference: TorchTensorRef, from bytes: UnsafeRawBufferPointer) -> Tensor {
        let storage = TensorStorage(uninitializedCount: reference.count)
        if reference.count > 0, let base = bytes.baseAddress {
            var written = 0
            forEachRow(reference) { start, step, length in
                convert(reference.storage.dtype, base, start: start, step: step, count: length,
                        into: storage.pointer + written)
                written += length
            }
        }
        return Tensor(shape: reference.shape, storage: storage)
    }

    /// Calls `body(start, step, length)` for each innermost row of the view, in C order
    /// (once for the whole tensor when it is contiguous). Requires `count > 0`.
    private static func forEachRow(_ reference: TorchTensorRef, _ body: (Int, Int, Int) -> Void) {
        let shape = reference.shape, stride = reference.stride
        let rank = shape.count
        var expected = 1
        var contiguous = true
        for axis in stride.indices.reversed() where shape[axis] != 1 {
            if stride[axis] != expected { contiguous = false; break }
            expected *= shape[axis]
        }
        if rank == 0 || contiguous {
            body(reference.offset, 1, reference.count)
            return
        }
        let length = shape[rank - 1], step = stride[rank - 1]
        var index = [Int](repeating: 0, count: rank - 1)
        var start = reference.offset
        for _ in 0..<(reference.count / length) {
            body(start, step, length)
            var axis = rank - 2
            while axis >= 0 {
                if index[axis] + 1 < shape[axis] {
                    index[axis] += 1
                    start += stride[axis]
                    break
                }
                start -= stride[axis] * index[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// Converts `count` elements at element indices `start`, `start + step`, ... to float32.
    private static func convert(_ dtype: TorchDType, _ base: UnsafeRawPointer, start: Int, step: Int, count: Int,
                                into destination: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .float32:
            #if _endian(little)
            if step == 1 {
                UnsafeMutableRawPointer(destination).copyMemory(from: base + 4 * start, byteCount: 4 * count)
                return
            }
            #endif
            for j in 0..<count {
                let bits = base.loadUnaligned(fromByteOffset: 4 * (start + j * step), as: UInt32.self)
                destination[j] = Float(bitPattern: UInt32(littleEndian: bits))
            }
        case .float16:
            for j in 0..<count {
                let bits = base.loadUnaligned(fromByteOffset: 2 * (start + j * step), as: UInt16.self)
                destination[j] = SafetensorsFile.floatFromHalf(UInt16(littleEndian: bits))
            }
        case .bfloat16:
            for j in 0..<count {
                let bits = base.loadUnaligned(fromByteOffset: 2 * (start + j * step), as: UInt16.self)
                destination[j] = Float(bitPattern: UInt32(UInt16(littleEndian: bits)) << 16)
            }
        case .float64:
            for j in 0..<count {
                let bits = base.loadUnaligned(fromByteOffset: 8 * (start + j * step), as: UInt64.self)
                destination[j] = Float(Double(bitPattern: UInt64(littleEndian: bits)))
            }
        default:
            preconditionFailure("integer storages are dropped before conversion")
        }
    }

    // MARK: - Writing

    /// A checkpoint of float32 tensors laid out as `torch.save(state_dict)` writes it
    /// (protocol 2, an OrderedDict of `_rebuild_tensor_v2` over FloatStorages, keys
    /// sorted), loadable by `torch.load(..., weights_only=True)` and by `parse`. For
    /// tests and tools; `archiveName` is the top-level folder.
    public static func encode(_ tensors: [String: Tensor], archiveName: String = "archive") -> Data {
        var pickle: [UInt8] = [0x80, 0x02]
        func global(_ module: String, _ name: String) {
            pickle.append(0x63)
            pickle.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
        }
        func string(_ text: String) {
            let utf8 = Array(text.utf8)
            pickle.append(0x58)
            withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { pickle.append(contentsOf: $0) }
            pickle.append(contentsOf: utf8)
        }
        func integer(_ value: Int) {
            if (0...0xFF).contains(value) {
                pickle.append(contentsOf: [0x4B, UInt8(value)])
            } else if let small = Int32(exactly: value) {
                pickle.append(0x4A)
                withUnsafeBytes(of: small.littleEndian) { pickle.append(contentsOf: $0) }
            } else {
                pickle.append(contentsOf: [0x8A, 8])
                withUnsafeBytes(of: Int64(value).littleEndian) { pickle.append(contentsOf: $0) }
            }
        }
        func emptyOrderedDict() {
            global("collections", "OrderedDict")
            pickle.append(contentsOf: [0x29, 0x52])  // EMPTY_TUPLE, REDUCE
        }
        let names = tensors.keys.sorted()
        emptyOrderedDict()
        pickle.append(0x28)  // MARK
        for (number, name) in names.enumerated() {
            let tensor = tensors[name]!
            string(name)
            global("torch._utils", "_rebuild_tensor_v2")
            pickle.append(0x28)  // MARK: arguments
            pickle.append(0x28)  // MARK: persistent id
            string("storage")
            global("torch", "FloatStorage")
            string(String(number))
            string("cpu")
            integer(tensor.count)
            pickle.append(contentsOf: [0x74, 0x51])  // TUPLE, BINPERSID
            integer(0)
            pickle.append(0x28)
            for size in tensor.shape { integer(size) }
            pickle.append(0x74)
            pickle.append(0x28)
            var strides = [Int](repeating: 1, count: tensor.rank)
            for axis in stride(from: tensor.rank - 2, through: 0, by: -1) {
                strides[axis] = strides[axis + 1] * tensor.shape[axis + 1]
            }
            for step in strides { integer(step) }
            pickle.append(0x74)
            pickle.append(0x89)  // requires_grad False
            emptyOrderedDict()  // backward hooks
            pickle.append(contentsOf: [0x74, 0x52])  // TUPLE, REDUCE
        }
        pickle.append(contentsOf: [0x75, 0x2E])  // SETITEMS, STOP

        var files: [(name: String, contents: Data)] = [("\(archiveName)/data.pkl", Data(pickle)),
                                                      ("\(archiveName)/byteorder", Data("little".utf8))]
        for (number, name) in names.enumerated() {
            let tensor = tensors[name]!
            var bytes = Data(capacity: tensor.count * 4)
            tensor.withUnsafeBufferPointer { values in
                #if _endian(big)
                for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                #else
                bytes.append(UnsafeBufferPointer(start: values.baseAddress, count: values.count))
                #endif
            }
            files.append(("\(archiveName)/data/\(number)", bytes))
        }
        files.append(("\(archiveName)/version", Data("3\n".utf8)))
        return ZipArchive.storedArchive(files)
    }
}
