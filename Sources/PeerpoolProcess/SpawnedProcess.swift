import PeerpoolErrors
import CLinuxProcess
import Foundation  // ProcessInfo (our environment for the child), Thread (the standard input writer)

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A worker process started with `posix_spawn`, watched through a pidfd, reaped exactly once.
///
/// **One thread.** Not Sendable: the supervisor creates, polls, signals, reaps and closes each
/// one on its ZeroMQ poll thread. That thread must be long-lived, because the worker arms
/// `PR_SET_PDEATHSIG` (see `ParentDeath`), which fires when the spawning *thread* exits.
///
/// **File descriptors.** Every descriptor the parent creates is close-on-exec from the start
/// (`pipe2(O_CLOEXEC)`, `F_DUPFD_CLOEXEC`), so a worker spawned later, by us or by any other
/// thread, inherits none of them. If a later worker held this one's standard input write end,
/// this one would never see EOF when we close it.
/// - `exitDescriptor` (the pidfd) is owned here and closed by `close()`.
/// - The write end of the child's standard input is owned here, kept open after the initial
///   bytes (the child reads stdin EOF as "supervisor gone"), and closed by `close()`.
/// - The read end of that pipe is closed in the parent once the child has it as its fd 0.
/// - While the initial bytes are still being written, the writer thread owns a duplicate of the
///   write end and the read end of a stop pipe; we own the stop pipe's write end. `close()`
///   closes it, which wakes the writer, which closes its two descriptors and ends.
///
/// **Standard input never blocks the caller.** `spawn` writes what fits into the pipe without
/// blocking; the rest (a configuration can be ~1 MB, a pipe holds 64 KiB) goes to a thread of
/// its own, which writes as the child reads and ends when everything is written, the child is
/// gone (EPIPE, with SIGPIPE blocked on that thread) or `close()` is called.
///
/// **Reaping.** `reap()` calls `waitpid(WNOHANG)` until the child has exited, then keeps the
/// result. The pid is signalled only before that: an unreaped child keeps its pid, so `kill`
/// cannot reach a stranger that reused it. A process released unreaped is killed (SIGKILL) and
/// reaped in `deinit`, which blocks until the kernel has removed it (normally microseconds).
public final class SpawnedProcess {
    public let pid: pid_t
    /// A pidfd for the child: readable (POLLIN) once it has exited, and from then on. Put it in
    /// the poll set; remove it before `close()`, which closes it. Owned by this object.
    public let exitDescriptor: Int32
    /// Write end of the child's standard input (O_CLOEXEC, O_NONBLOCK). Owned; -1 once closed.
    private var inputDescriptor: Int32
    /// Write end of the stop pipe of the standard input writer thread, or -1 when there is no
    /// writer. Owned; closing it stops the writer.
    private var writerStopDescriptor: Int32
    private var termination: ProcessTermination?
    private var closed = false

    private init(pid: pid_t, exitDescriptor: Int32, inputDescriptor: Int32, writerStopDescriptor: Int32) {
        self.pid = pid
        self.exitDescriptor = exitDescriptor
        self.inputDescriptor = inputDescriptor
        self.writerStopDescriptor = writerStopDescriptor
    }

    deinit {
        if termination == nil {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            Self.waitUntilGone(pid)
        }
        close()
    }

    // MARK: Starting

    /// Starts `executable` (a path; PATH is not searched) with `arguments` after argv[0], which is
    /// the executable. `environment` nil passes ours on. Standard output and error are ours.
    ///
    /// The child's standard input is a pipe that first carries `standardInput` and then stays
    /// open until `close()`. Nothing here blocks on the child: see the type's documentation.
    /// The child starts with no signals blocked and SIGPIPE, SIGTERM, SIGINT and SIGCHLD at their
    /// defaults, whatever this process ignores or blocks.
    public static func spawn(
        executable: String, arguments: [String], environment: [String: String]? = nil,
        standardInput: [UInt8]
    ) throws -> SpawnedProcess {
        func failure(_ code: ProcessSpawnError.Code, _ number: Int32) -> ProcessSpawnError {
            ProcessSpawnError(code: code, executable: executable, errno: number)
        }
        guard let pipe = makePipe() else { throw failure(.cannotCreatePipe, errno) }
        var readEnd = pipe.read
        let writeEnd = pipe.write
        // Should fd 0 be free in the parent, the read end could be 0 itself; dup2(0, 0) in the
        // child would then keep its close-on-exec flag and the child would start without stdin.
        if readEnd <= 2 {
            let moved = fcntl(readEnd, F_DUPFD_CLOEXEC, 3)
            let number = errno
            closeDescriptor(readEnd)
            guard moved >= 0 else {
                closeDescriptor(writeEnd)
                throw failure(.cannotCreatePipe, number)
            }
            readEnd = moved
        }
        _ = fcntl(writeEnd, F_SETFL, fcntl(writeEnd, F_GETFL) | O_NONBLOCK)

        // While we hold the read end, a write cannot fail with EPIPE (or raise SIGPIPE here).
        let written = writeAvailable(writeEnd, standardInput)
        var writer: (input: Int32, stopRead: Int32, stopWrite: Int32)?
        if written < standardInput.count {
            let input = fcntl(writeEnd, F_DUPFD_CLOEXEC, 0)
            let stop = input >= 0 ? makePipe() : nil
            guard let stop else {
                let number = errno
                closeDescriptor(input)
                closeDescriptor(readEnd)
                closeDescriptor(writeEnd)
                throw failure(.cannotCreatePipe, number)
            }
            writer = (input, stop.read, stop.write)
        }

        let (pid, spawnError) = posixSpawn(
            executable: executable, arguments: [executable] + arguments,
            environment: environment ?? ProcessInfo.processInfo.environment, standardInput: readEnd)
        closeDescriptor(readEnd)
        guard spawnError == 0 else {
            if let writer { [writer.input, writer.stopRead, writer.stopWrite].forEach(closeDescriptor) }
            closeDescriptor(writeEnd)
            throw failure(.cannotSpawn, spawnError)
        }
        if let writer {
            startWriter(
                pid: pid, input: writer.input, stop: writer.stopRead,
                bytes: Array(standardInput[written...]))
        }

        let exitDescriptor = pp_pidfd_open(pid)
        guard exitDescriptor >= 0 else {
            let number = errno
            kill(pid, SIGKILL)
            waitUntilGone(pid)
            if let writer { closeDescriptor(writer.stopWrite) }
            closeDescriptor(writeEnd)
            throw failure(.cannotWatch, number)
        }
        return SpawnedProcess(
            pid: pid, exitDescriptor: exitDescriptor, inputDescriptor: writeEnd,
            writerStopDescriptor: writer?.stopWrite ?? -1)
    }

    // MARK: Running and ending

    /// Sends `signal` to the child, unless it has already been reaped (its pid may belong to
    /// another process by then). A child that is already gone is not an error.
    public func signal(_ signal: Int32) {
        guard termination == nil else { return }
        // The only failures: ESRCH (gone) and EINVAL (not a signal, a caller's bug); nothing
        // for the caller to do about either at run time.
        _ = kill(pid, signal)
    }

    /// Sends `signal` to the child's whole process group: the child and whatever it started
    /// (the Swift runtime's `swift-backtrace` after a crash), which would otherwise outlive a
    /// killed worker under PID 1, holding its sockets and our standard output. Every child is
    /// its own group's leader (`POSIX_SPAWN_SETPGROUP`), so the group's id is its pid, which
    /// stays reserved until we reap it: this cannot reach a stranger's group.
    public func signalGroup(_ signal: Int32) {
        guard termination == nil else { return }
        _ = kill(-pid, signal)
    }

    /// How the child ended, or nil while it is running. Reaps it (`waitpid(WNOHANG)`) the first
    /// time it finds it exited, then returns that same value on every later call. Call it when
    /// `exitDescriptor` becomes readable. Never blocks.
    public func reap() -> ProcessTermination? {
        if let termination { return termination }
        // Exited (the pidfd is readable) but not yet reaped: its pid still names its group, so
        // whatever it left running there (a crash reporter, a grandchild) goes with it.
        var exited = pollfd(fd: exitDescriptor, events: Int16(POLLIN), revents: 0)
        if poll(&exited, 1, 0) == 1 { _ = kill(-pid, SIGKILL) }
        var status: Int32 = 0
        // Bounded: only EINTR repeats.
        for _ in 0..<1_000 {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                termination = ProcessTermination(waitStatus: status)
                return termination
            }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: the kernel reaped it already (this process ignores SIGCHLD), so it has
            // exited, but how is lost.
            termination = ProcessTermination(exitCode: nil, signal: nil)
            return termination
        }
        return nil
    }

    /// Closes the pidfd and our end of the child's standard input (the child sees EOF: once a
    /// still-running writer thread has stopped, which it does at once). Does not signal or reap
    /// the child. Call it at most once the pidfd is out of the poll set; later calls do nothing.
    public func close() {
        guard !closed else { return }
        closed = true
        closeDescriptor(exitDescriptor)
        closeDescriptor(inputDescriptor)
        inputDescriptor = -1
        if writerStopDescriptor >= 0 {
            closeDescriptor(writerStopDescriptor)
            writerStopDescriptor = -1
        }
    }

    // MARK: Plumbing

    /// `pipe2(O_CLOEXEC)`, or nil with errno set. Both ends are close-on-exec from birth: with
    /// `pipe` + `fcntl` another thread's spawn between the two calls would inherit them.
    private static func makePipe() -> (read: Int32, write: Int32)? {
        var ends: [Int32] = [-1, -1]
        let result = ends.withUnsafeMutableBufferPointer { pp_pipe_cloexec($0.baseAddress!) }
        guard result == 0 else { return nil }
        return (ends[0], ends[1])
    }

    /// Runs `posix_spawn` with `standardInput` as the child's fd 0, no signals blocked and the
    /// signals a Swift server commonly ignores or blocks at their defaults. Returns the pid and
    /// 0, or posix_spawn's error (glibc reports a failed exec such as ENOENT here too).
    private static func posixSpawn(
        executable: String, arguments: [String], environment: [String: String], standardInput: Int32
    ) -> (pid: pid_t, error: Int32) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the new fd 0; the original read end closes on exec.
        posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        // Nothing else crosses over: descriptors this process did not mark close-on-exec (an
        // embedding application's, Foundation Process pipes of other threads) would otherwise
        // live on in every worker, and a pipe held open there never reaches its end for its
        // reader (a test hung exactly so).
        pp_spawn_close_from(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // Its own process group (pgid = its pid), so that killing the group ends everything it
        // started too; see `signalGroup`.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        // C strings for argv and envp: allocated here, freed when posix_spawn has returned (the
        // child has its own copies by then).
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        return (pid, error)
    }

    /// Reaps `pid`, blocking until it has exited: only after SIGKILL, which it cannot ignore.
    private static func waitUntilGone(_ pid: pid_t) {
        var status: Int32 = 0
        // Bounded: only EINTR repeats.
        for _ in 0..<1_000 {
            if waitpid(pid, &status, 0) >= 0 || errno != EINTR { return }
        }
    }

    /// Writes as much of `bytes` as fits without blocking into the non-blocking `descriptor`;
    /// returns how much. Bounded: each round writes at least one byte or stops.
    private static func writeAvailable(_ descriptor: Int32, _ bytes: [UInt8]) -> Int {
        var offset = 0
        var interrupted = 0
        while offset < bytes.count, interrupted < 1_000 {
            let count = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if count > 0 {
                offset += count
            } else if count < 0, errno == EINTR {
                interrupted += 1
            } else {
                break  // EAGAIN: the pipe is full; the writer thread takes the rest
            }
        }
        return offset
    }

    /// Starts the thread that writes the rest of the child's standard input. It owns `input` (a
    /// duplicate of the write end) and `stop` (the read end of the stop pipe) and closes both
    /// when it ends: all written, the child gone, or the stop pipe closed by `close()`.
    private static func startWriter(pid: pid_t, input: Int32, stop: Int32, bytes: [UInt8]) {
        let thread = Thread {
            // A write to a pipe nobody reads raises SIGPIPE at the writing thread. Blocked here,
            // the write fails with EPIPE instead; the pending signal is discarded with the thread.
            var pipeSignal = sigset_t()
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
            feed(input, stop: stop, bytes)
            closeDescriptor(input)
            closeDescriptor(stop)
        }
        thread.name = "peerpool-stdin-\(pid)"
        thread.start()
    }

    /// The writer thread's loop. Waits as long as the child takes to read (it is this thread's
    /// only job); each wake-up either writes bytes or ends the loop.
    private static func feed(_ input: Int32, stop: Int32, _ bytes: [UInt8]) {
        var offset = 0
        var descriptors = [
            pollfd(fd: input, events: Int16(POLLOUT), revents: 0),
            pollfd(fd: stop, events: Int16(POLLIN), revents: 0),
        ]
        while offset < bytes.count {
            let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            // Any event on the stop pipe is POLLHUP: close() closed its write end.
            if descriptors[1].revents != 0 { return }
            guard descriptors[0].revents != 0 else { continue }
            let count = bytes.withUnsafeBytes { buffer in
                write(input, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if count > 0 {
                offset += count
            } else if count < 0, errno == EAGAIN || errno == EINTR {
                continue
            } else {
                return  // EPIPE: the child is gone
            }
        }
    }
}

/// `close(2)`, under a name the `close()` methods of the types here do not shadow.
private func closeDescriptor(_ descriptor: Int32) {
    if descriptor >= 0 { _ = close(descriptor) }
}

/// A worker process could not be started.
public struct ProcessSpawnError: PeerpoolError {
    /// Which step failed. Open-ended: new codes may be added.
    public typealias Code = ErrorCode<ProcessSpawnError>

    public let code: Code
    /// The executable's path as given.
    public let executable: String
    /// The system error.
    public let errno: Int32
    public let location: SourceLocation

    public init(code: Code, executable: String, errno: Int32, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.executable = executable
        self.errno = errno
        self.location = SourceLocation(fileID: file, line: line)
    }

    /// "cannot start worker /x/peerpool: No such file or directory (…)"; what failed, why, and
    /// where known what to do about it.
    public var message: String {
        var message = "cannot start worker \(executable): "
        switch code {
        case .cannotCreatePipe: message += "cannot create its standard input pipe: "
        case .cannotWatch: message += "pidfd_open failed: "
        default: break
        }
        message += String(cString: strerror(errno))
        switch errno {
        case ENOENT where code == .cannotSpawn:
            message += " (check the path; it is not searched for in PATH)"
        case EACCES where code == .cannotSpawn:
            message += " (check that the file is executable and its directories searchable)"
        case ENOEXEC:
            message += " (not an executable for this system)"
        case EMFILE, ENFILE:
            message += " (too many open files; raise the limit, e.g. ulimit -n)"
        case EAGAIN:
            message += " (process limit reached; check ulimit -u)"
        case ENOSYS where code == .cannotWatch:
            message += " (pidfd_open needs Linux 5.3 or later)"
        default: break
        }
        return message
    }
}

extension ErrorCode where Domain == ProcessSpawnError {
    /// The pipe for its standard input (or the writer's descriptors) could not be created.
    public static let cannotCreatePipe = Self("cannot_create_pipe")
    /// `posix_spawn` failed: a missing or non-executable file, or no resources.
    public static let cannotSpawn = Self("cannot_spawn")
    /// `pidfd_open` failed; the child was killed again.
    public static let cannotWatch = Self("cannot_watch")
}
