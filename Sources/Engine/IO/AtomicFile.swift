import ElucidateCore
import Foundation

/// Writes output files so that readers never see a partial result, without ever
/// replacing anything that is not a regular file, and reports every write error.
///
/// What a destination path gets depends on what it is (see `destination(of:)`):
///
/// - nothing yet, or a regular file: the bytes go to a temporary file in the same folder
///   (`.NAME.UUID.tmp`), which is flushed to disk (`fsync`) and renamed over the
///   destination; an existing file keeps its permission bits. A failure at any step
///   (a full disk, a quota, a file size limit, an I/O error at `fsync` or `close`, a
///   failed rename) removes the temporary file and leaves the destination as it was.
/// - a character or block device, a FIFO or a socket: opened and written in place, never
///   replaced — `/dev/null` discards, `/dev/full` reports a full disk, a FIFO (named pipe)
///   feeds its reader, a Unix stream socket its listener. A FIFO that no process is
///   reading is refused at once rather than waited on.
/// - a symbolic link: followed, link by link, to what it finally names, which is then
///   treated as above — a regular file is replaced where it is (the link stays a link),
///   a device or pipe (`/dev/stdout` on a terminal or a pipe) is written in place. A link
///   to an open descriptor (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`) that is a
///   regular file (the shell's `> out.npy`) is appended to rather than replaced behind the
///   shell's back. A link to nothing is refused (no file is created through a dangling
///   link), and so is a link in a world-writable sticky folder such as `/tmp` owned by
///   someone else than the writer or the folder's owner (the rule of Linux's
///   `fs.protected_symlinks`, which a rename would bypass).
/// - a folder, or a path under a folder that does not exist: refused.
///
/// Writes never kill the process: SIGPIPE (a reader that went away) and SIGXFSZ (the
/// file size limit) are blocked on the writing thread while it writes, so they arrive as
/// the errors EPIPE and EFBIG and are reported like any other.
public enum AtomicFile {
    /// How `write` writes to a path.
    public enum Destination: Equatable, Sendable {
        /// Nothing is there yet: a new file, created atomically at `path`.
        case newFile(path: String)
        /// An existing regular file (the final target of any symbolic links), replaced atomically.
        case regularFile(path: String)
        /// A device, FIFO or socket, opened (through any symbolic links at `path`) and written in place.
        case inPlace(path: String, kind: FileKind)

        /// The path that is written: the final target for a regular file.
        public var path: String {
            switch self {
            case .newFile(let path), .regularFile(let path), .inPlace(let path, _): path
            }
        }

        /// Whether the destination is a file that is (or will be) created by renaming, as
        /// opposed to a device, FIFO or socket written in place.
        public var isFile: Bool {
            if case .inPlace = self { return false }
            return true
        }
    }

    /// Most symbolic links followed for one destination (Linux's own limit).
    static let maximumLinks = 40

    /// What writing to `url` would do, or the refusal `write` would give (naming `url`):
    /// for checking every output of a command before any work, so that a run that cannot
    /// write all of them writes none.
    public static func destination(of url: URL) throws(ElucidateError) -> Destination {
        let shown = url.path
        var path = url.path
        var links = 0
        while true {
            switch FileKind.of(path, followingLinks: false) {
            case .failed(ENOENT):
                if links > 0 {
                    throw ElucidateError(.invalidArgument,
                                         "is a symbolic link to \(TerminalText.escaped(path)), which does not exist; "
                                         + "no file is created through a symbolic link", path: shown)
                }
                let folder = parentFolder(path)
                switch FileKind.of(folder) {
                case .found(.folder, _):
                    return .newFile(path: path)
                case .found, .failed(ENOENT), .failed(ENOTDIR):
                    throw ElucidateError(.fileNotFound, "folder \(folder) does not exist", path: shown)
                case .failed(let code):
                    throw ElucidateError(.unreadable, "cannot write: \(errnoText(code))", path: shown)
                }
            case .failed(ENOTDIR):
                throw ElucidateError(.fileNotFound, "folder \(parentFolder(path)) does not exist", path: shown)
            case .failed(let code):
                throw ElucidateError(.unreadable, "cannot write: \(errnoText(code))", path: shown)
            case .found(let kind, let info):
                switch kind {
                case .regularFile:
                    return .regularFile(path: path)
                case .folder:
                    throw ElucidateError(.invalidArgument, "is a folder, not a file", path: shown)
                case .characterDevice, .blockDevice, .fifo, .socket:
                    return .inPlace(path: path, kind: kind)
                case .unknown:
                    throw ElucidateError(.invalidArgument, "is not a file of a known type; cannot write to it", path: shown)
                case .symbolicLink:
                    links += 1
                    guard links <= maximumLinks else {
                        throw ElucidateError(.invalidArgument, "cannot write: too many levels of symbolic links", path: shown)
                    }
                    try checkMayFollow(link: path, owner: info.st_uid, shown: shown)
                    // A device behind the link is opened through it (so are /proc's links
                    // such as /dev/stdout → /proc/self/fd/1 → pipe:[…], which name no path).
                    // An open file descriptor (/dev/stdout, /dev/fd/N) is written where it
                    // is even when it is a regular file — appended to, as the shell's
                    // redirection expects — rather than replaced behind the shell's back.
                    if case .found(let target, _) = FileKind.of(path), target != .folder,
                       target != .regularFile || isDescriptorLink(path) {
                        return .inPlace(path: path, kind: target)
                    }
                    path = try linkTarget(path, shown: shown)
                }
            }
        }
    }

    /// Writes `data` to `url` as `destination(of:)` describes: atomically for a file,
    /// in place for a device, FIFO or socket. Refuses to write over any of
    /// `protectedInputs` (the command's own inputs), compared by device and inode after
    /// following links, and by resolved path. Errors name `url`'s path.
    public static func write(_ data: Data, to url: URL, protectedInputs: [URL] = []) throws(ElucidateError) {
        let destination = try destination(of: url)
        if writing(destination, wouldOverwriteAnyOf: protectedInputs) {
            throw ElucidateError(.invalidArgument, "refusing to overwrite an input file", path: url.path)
        }
        switch destination {
        case .newFile(let path):
            try replace(path, with: data, keepingModeOf: nil, shown: url.path)
        case .regularFile(let path):
            var info = stat()
            try replace(path, with: data, keepingModeOf: stat(path, &info) == 0 ? info : nil, shown: url.path)
        case .inPlace(let path, let kind):
            try writeInPlace(path, kind: kind, data: data, shown: url.path)
        }
    }

    /// Whether writing `destination` would overwrite one of `inputs`: the same device and
    /// inode (after following links), or, where either does not exist, the same resolved path.
    /// Never for a device, FIFO or socket, which is written to rather than overwritten.
    public static func writing(_ destination: Destination, wouldOverwriteAnyOf inputs: [URL]) -> Bool {
        guard !inputs.isEmpty else { return false }
        if case .inPlace(_, let kind) = destination, kind != .regularFile { return false }
        var target = stat()
        let exists = stat(destination.path, &target) == 0
        let resolved = URL(fileURLWithPath: destination.path).standardizedFileURL.resolvingSymlinksInPath()
        for input in inputs {
            var info = stat()
            if exists, stat(input.path, &info) == 0 {
                if info.st_dev == target.st_dev && info.st_ino == target.st_ino { return true }
            } else if input.standardizedFileURL.resolvingSymlinksInPath() == resolved {
                return true
            }
        }
        return false
    }

    // MARK: - Private

    /// The folder of `path` as written (no links resolved, so that the kernel resolves
    /// them when the file is opened or renamed, exactly as for `path`).
    static func parentFolder(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }

    /// Whether `path` is one of /proc's links to a process's open file descriptors
    /// (`/proc/self/fd/1`, which `/dev/stdout` and `/dev/fd/1` lead to).
    static func isDescriptorLink(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return parts.count == 4 && parts[0] == "proc" && parts[2] == "fd" && parts[3].allSatisfy(\.isNumber)
    }

    /// Where the symbolic link `path` points, relative to its folder.
    private static func linkTarget(_ path: String, shown: String) throws(ElucidateError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else {
            throw ElucidateError(.unreadable, "cannot read the symbolic link: \(errnoText(errno))", path: shown)
        }
        let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix("/") { return target }
        let folder = parentFolder(path)
        return folder == "/" ? "/" + target : folder + "/" + target
    }

    /// Refuses to follow a link in a world-writable sticky folder (e.g. `/tmp`) unless it
    /// belongs to the writer or to the folder's owner: someone else's link there could
    /// point anywhere the writer (root, say) may write.
    private static func checkMayFollow(link path: String, owner: uid_t, shown: String) throws(ElucidateError) {
        guard case .found(_, let folder) = FileKind.of(parentFolder(path)) else { return }
        let mode = folder.st_mode
        guard mode & S_ISVTX != 0, mode & S_IWOTH != 0 else { return }
        guard owner == geteuid() || owner == folder.st_uid else {
            throw ElucidateError(.invalidArgument,
                                 "is a symbolic link in the world-writable folder \(parentFolder(path)) owned by another user; "
                                 + "refusing to follow it", path: shown)
        }
    }

    /// Writes `data` to a temporary file beside `path` and renames it over `path`.
    private static func replace(_ path: String, with data: Data, keepingModeOf existing: stat?, shown: String) throws(ElucidateError) {
        let folder = parentFolder(path)
        let name = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        // Keep the temporary name within NAME_MAX (255 bytes) however long the destination's.
        var short = ""
        for character in name where short.utf8.count + character.utf8.count <= 100 { short.append(character) }
        let temporary = (folder == "/" ? "" : folder) + "/.\(short).\(UUID().uuidString).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw ElucidateError(.unreadable, "cannot write: \(errnoText(errno))", path: shown)
        }
        if let existing { _ = fchmod(fd, existing.st_mode & 0o777) }
        var failure = blockingWriteSignals { writeAll(fd, data) }
        if failure == nil, fsync(fd) != 0, errno != EINVAL { failure = errno }
        if close(fd) != 0, failure == nil, errno != EINTR { failure = errno }
        if failure == nil, rename(temporary, path) != 0 { failure = errno }
        if let failure {
            unlink(temporary)
            throw ElucidateError(.unreadable, "cannot write: \(errnoText(failure))", path: shown)
        }
    }

    /// Opens the device, FIFO or socket at `path` and writes `data` to it.
    private static func writeInPlace(_ path: String, kind: FileKind, data: Data, shown: String) throws(ElucidateError) {
        if kind == .socket { return try writeToSocket(path, data: data, shown: shown) }
        // Non-blocking, so that a FIFO without a reader fails (ENXIO) instead of waiting;
        // a regular file (only through a descriptor link) is appended to, never truncated.
        let append = kind == .regularFile ? O_APPEND : 0
        let fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | append)
        guard fd >= 0 else {
            let code = errno
            if code == ENXIO && kind == .fifo {
                throw ElucidateError(.unreadable, "is a FIFO (named pipe) that no process is reading; start the reader first",
                                     path: shown)
            }
            throw ElucidateError(.unreadable, "cannot write: \(errnoText(code))", path: shown)
        }
        var info = stat()
        let opened = fstat(fd, &info) == 0 ? FileKind(mode: info.st_mode) : .unknown
        guard opened == kind || (opened != .regularFile && opened != .folder && opened != .unknown) else {
            close(fd)
            throw ElucidateError(.unreadable, "changed while it was being opened; nothing was written", path: shown)
        }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        var failure = blockingWriteSignals { writeAll(fd, data) }
        if failure == nil, opened == .blockDevice || opened == .regularFile, fsync(fd) != 0, errno != EINVAL { failure = errno }
        if close(fd) != 0, failure == nil, errno != EINTR { failure = errno }
        if let failure {
            throw ElucidateError(.unreadable, "cannot write: \(errnoText(failure))", path: shown)
        }
    }

    /// Connects to the Unix stream socket at `path` and sends `data`.
    private static func writeToSocket(_ path: String, data: Data, shown: String) throws(ElucidateError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ElucidateError(.unreadable, "is a socket whose path is too long to connect to", path: shown)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ElucidateError(.unreadable, "cannot write: \(errnoText(errno))", path: shown) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            switch code {
            case ECONNREFUSED:
                throw ElucidateError(.unreadable, "is a socket that nothing is listening on", path: shown)
            case EPROTOTYPE:
                throw ElucidateError(.unreadable, "is a socket that does not take a stream; cannot write to it", path: shown)
            default:
                throw ElucidateError(.unreadable, "cannot write: \(errnoText(code))", path: shown)
            }
        }
        var failure = blockingWriteSignals { writeAll(fd, data) }
        if failure == nil, shutdown(fd, Int32(SHUT_WR)) != 0, errno != ENOTCONN { failure = errno }
        if close(fd) != 0, failure == nil, errno != EINTR { failure = errno }
        if let failure {
            throw ElucidateError(.unreadable, "cannot write: \(errnoText(failure))", path: shown)
        }
    }
}

/// Writes text to the standard output (file descriptor 1) unbuffered, checking every write:
/// a full disk, a closed pipe or any other failure is an error, not lost output.
public enum StandardOutput {
    /// Writes `text` (UTF-8) to the standard output.
    ///
    /// - Throws: `.unreadable`, "cannot write to the standard output: REASON".
    public static func write(_ text: String) throws(ElucidateError) {
        try write(Data(text.utf8))
    }

    /// Writes `data` to the standard output.
    public static func write(_ data: Data) throws(ElucidateError) {
        fflush(nil)  // whatever went through stdio first, in order
        if let failure = blockingWriteSignals({ writeAll(STDOUT_FILENO, data) }) {
            throw ElucidateError(.unreadable, "cannot write to the standard output: \(errnoText(failure))")
        }
    }
}

/// Writes messages to the standard error (file descriptor 2) unbuffered, without ever
/// trapping: Foundation's `FileHandle.standardError.write` stops the process when the
/// write fails (stderr on a full disk or a closed pipe), turning a one-line refusal into a crash.
public enum StandardError {
    /// Writes `text` (UTF-8) to the standard error; false if it could not be written
    /// (there is nowhere left to report that).
    @discardableResult
    public static func write(_ text: String) -> Bool {
        blockingWriteSignals { writeAll(STDERR_FILENO, Data(text.utf8)) } == nil
    }
}

/// Writes all of `data` to `fd`, retrying interrupted and partial writes (and waiting when
/// the descriptor is non-blocking and full); nil on success, else the `errno`.
func writeAll(_ fd: Int32, _ data: Data) -> Int32? {
    data.withUnsafeBytes { raw -> Int32? in
        guard let base = raw.baseAddress else { return nil }
        var offset = 0
        while offset < raw.count {
            let written = write(fd, base + offset, raw.count - offset)
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, -1)
                    continue
                }
                return code
            }
            if written == 0 { return EIO }
            offset += written
        }
        return nil
    }
}

/// Runs `body` with SIGPIPE and SIGXFSZ blocked on this thread, so that writing to a pipe
/// or socket whose reader has gone, or past the file size limit (`ulimit -f`), fails with
/// EPIPE or EFBIG instead of killing the process; such a signal raised by `body` is
/// discarded (one pending before, or blocked by the caller, is left alone).
func blockingWriteSignals<T>(_ body: () -> T) -> T {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGPIPE)
    sigaddset(&signals, SIGXFSZ)
    var previous = sigset_t()
    pthread_sigmask(SIG_BLOCK, &signals, &previous)
    var pendingBefore = sigset_t()
    sigpending(&pendingBefore)
    let result = body()
    var pendingAfter = sigset_t()
    sigpending(&pendingAfter)
    for signal in [SIGPIPE, SIGXFSZ]
    where sigismember(&pendingAfter, signal) == 1 && sigismember(&pendingBefore, signal) == 0
        && sigismember(&previous, signal) == 0 {
        var one = sigset_t()
        sigemptyset(&one)
        sigaddset(&one, signal)
        var now = timespec(tv_sec: 0, tv_nsec: 0)
        _ = sigtimedwait(&one, nil, &now)
    }
    pthread_sigmask(SIG_SETMASK, &previous, nil)
    return result
}
