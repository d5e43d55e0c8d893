import ElucidateCore
import Foundation

/// What a path names, as `stat` or `lstat` report it.
public enum FileKind: String, Sendable, Equatable {
    /// A regular file (`S_IFREG`): the only kind inputs may be.
    case regularFile
    /// A directory.
    case folder
    /// A symbolic link (seen only by `lstat`).
    case symbolicLink
    /// A character device such as `/dev/null` or a terminal.
    case characterDevice
    /// A block device such as a disk.
    case blockDevice
    /// A FIFO (named pipe).
    case fifo
    /// A Unix-domain socket.
    case socket
    /// A type `stat` reports that none of the above matches.
    case unknown

    /// The kind the file-type bits (`S_IFMT`) of a `stat` mode give.
    public init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regularFile
        case S_IFDIR: self = .folder
        case S_IFLNK: self = .symbolicLink
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        default: self = .unknown
        }
    }

    /// What `stat` (or `lstat`, when `followingLinks` is false) says of `path`.
    public static func of(_ path: String, followingLinks: Bool = true) -> FileLookup {
        var info = stat()
        let status = followingLinks ? stat(path, &info) : lstat(path, &info)
        guard status == 0 else { return .failed(errno: errno) }
        return .found(FileKind(mode: info.st_mode), info)
    }

    /// "a character device", "a FIFO (named pipe)", … for messages.
    public var phrase: String {
        switch self {
        case .regularFile: "a regular file"
        case .folder: "a folder"
        case .symbolicLink: "a symbolic link"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .fifo: "a FIFO (named pipe)"
        case .socket: "a socket"
        case .unknown: "not a file of a known type"
        }
    }
}

/// The result of `FileKind.of`: the kind and `stat` of what a path names, or the `errno`
/// of the failed call (`ENOENT`: nothing there).
public enum FileLookup {
    /// Something is there: its kind and the full `stat` record.
    case found(FileKind, stat)
    /// `stat` or `lstat` failed with this `errno`.
    case failed(errno: Int32)
}

/// The text of an `errno` value, e.g. "No space left on device".
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Opens the regular file at `url` for reading, following symbolic links, and returns the
/// descriptor (the caller closes it) with the file's size.
///
/// Anything but a regular file is refused with one line saying what it is and what was
/// expected, before it is opened: a device could have side effects or never end
/// (`/dev/zero`), and opening a FIFO without a writer would block forever. The type is
/// checked again on the opened descriptor (opened non-blocking), so a file swapped for a
/// FIFO in between cannot hang the caller either.
///
/// - Parameter expected: what the file should be, e.g. "a JPEG or PNG image", for the message.
func openRegularFile(_ url: URL, expected: String? = nil) throws(ElucidateError) -> (fd: Int32, size: Int) {
    let path = url.path
    let wanted = expected.map { "; expected \($0)" } ?? ""
    func refuse(_ kind: FileKind) -> ElucidateError {
        if kind == .folder { return ElucidateError(.unreadable, "is a folder, not a file\(wanted)", path: path) }
        return ElucidateError(.unreadable, "is \(kind.phrase), not a regular file\(wanted)", path: path)
    }
    switch FileKind.of(path) {
    case .failed(ENOENT):
        if case .found(.symbolicLink, _) = FileKind.of(path, followingLinks: false) {
            throw ElucidateError(.fileNotFound, "is a symbolic link to a file that does not exist", path: path)
        }
        throw ElucidateError(.fileNotFound, "no such file", path: path)
    case .failed(let code):
        throw ElucidateError(.unreadable, "cannot read: \(errnoText(code))", path: path)
    case .found(let kind, _) where kind != .regularFile:
        throw refuse(kind)
    case .found:
        break
    }
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
    guard fd >= 0 else {
        let code = errno
        if code == ENOENT { throw ElucidateError(.fileNotFound, "no such file", path: path) }
        throw ElucidateError(.unreadable, "cannot read: \(errnoText(code))", path: path)
    }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
        let code = errno
        close(fd)
        throw ElucidateError(.unreadable, "cannot read: \(errnoText(code))", path: path)
    }
    let kind = FileKind(mode: info.st_mode)
    guard kind == .regularFile else {
        close(fd)
        throw refuse(kind)
    }
    return (fd, Int(info.st_size))
}

/// Checks that `url` is a regular file (following symbolic links) without opening it:
/// the refusal `openRegularFile` would give, for readers that open the file themselves.
public func requireRegularFile(_ url: URL, expected: String? = nil) throws(ElucidateError) {
    let (fd, _) = try openRegularFile(url, expected: expected)
    close(fd)
}

/// Files at least this large are memory-mapped rather than read into memory.
private let mappingThreshold = 1 << 20

/// Reads a whole regular file, turning every failure into one clear `ElucidateError`
/// naming the file: a missing file, a folder, a device, FIFO or socket (refused before it
/// is opened, see `openRegularFile`), a read error.
///
/// Large files are memory-mapped (read-only, private), so a big file costs address space
/// rather than an allocation.
///
/// - Parameter expected: what the file should be, e.g. "a .npy file", for the message
///   refusing anything but a regular file.
public func readFileBytes(_ url: URL, expected: String? = nil) throws(ElucidateError) -> Data {
    let (fd, size) = try openRegularFile(url, expected: expected)
    defer { close(fd) }
    let path = url.path
    if size >= mappingThreshold {
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if let address, address != UnsafeMutableRawPointer(bitPattern: -1) {
            return Data(bytesNoCopy: address, count: size, deallocator: .custom { pointer, count in
                munmap(pointer, count)
            })
        }
        // Not mappable (some file systems): read it instead.
    }
    var data = Data(count: size)
    var filled = 0
    while filled < size {
        let result = data.withUnsafeMutableBytes { raw in
            read(fd, raw.baseAddress! + filled, size - filled)
        }
        if result < 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN {  // opened non-blocking; a regular file should not say this
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, 100)
                continue
            }
            throw ElucidateError(.unreadable, "cannot read: \(errnoText(code))", path: path)
        }
        if result == 0 { break }  // shrank while being read: the parsers report the truncation
        filled += result
    }
    if filled < size { data.removeSubrange(filled..<size) }
    return data
}
