import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor's private directory for its ZeroMQ sockets and its lock file.
///
/// The directory's mode is the access control for the sockets: ipc:// sockets carry no
/// authentication, so the directory must be 0700 and ours. A directory that exists with other
/// permissions or another owner is refused, not "fixed": someone else may be using it.
///
/// The lock (`supervisor.lock`, held with `flock` for the supervisor's lifetime) keeps a second
/// supervisor from binding the same socket paths: libzmq unlinks a stale ipc path before it
/// binds, which would silently steal a running supervisor's clients.
public struct RuntimeDirectory: Sendable {
    public let path: String

    public var frontendEndpoint: String { "ipc://\(path)/frontend.sock" }
    public var backendEndpoint: String { "ipc://\(path)/workers.sock" }

    public init(path: String) {
        self.path = path
    }

    /// Removes the socket files once their sockets are closed (libzmq leaves them when the
    /// context ends with the listener closed). Only the lock holder may: nobody else can have
    /// bound them meanwhile. The lock file stays; an unheld flock on it means nothing.
    func removeSockets() {
        for endpoint in [frontendEndpoint, backendEndpoint] {
            unlink(String(endpoint.dropFirst("ipc://".count)))
        }
    }

    /// Creates the directory (0700) if missing and checks owner and mode.
    public func prepare() throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw SupervisorError(.runtimeDirectory, "cannot create runtime directory \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SupervisorError(.runtimeDirectory, "cannot inspect runtime directory \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SupervisorError(.runtimeDirectory, "runtime directory \(path) is not a directory")
        }
        guard info.st_uid == getuid() else {
            throw SupervisorError(.runtimeDirectory, "runtime directory \(path) belongs to uid \(info.st_uid), not to us (uid \(getuid())); choose another with --runtime-dir")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw SupervisorError(
                .runtimeDirectory,
                "runtime directory \(path) has mode \(String(info.st_mode & 0o777, radix: 8)); it must be 0700 (run `chmod 700 \(path)`) so other users cannot reach the sockets"
            )
        }
    }

    /// Takes the directory's lock; the returned descriptor holds it until closed (or the process
    /// ends). Owned by the caller.
    public func lock() throws -> Int32 {
        let lockPath = "\(path)/supervisor.lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SupervisorError(.runtimeDirectory, "cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = read(descriptor, &buffer, 31)
            let holder = count > 0 ? String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(descriptor)
            throw SupervisorError(.alreadyRunning, "another peerpool supervisor (pid \(holder)) is running with runtime directory \(path)")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pwrite(descriptor, pid, pid.count, 0)
        return descriptor
    }
}
