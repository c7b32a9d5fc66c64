import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process of the benchmarks: started with `posix_spawn`, reaped exactly once.
///
/// Every wait is bounded. `readLine(timeout:)` gives up at its deadline; `wait(timeout:)` kills
/// the child (SIGKILL) when it has not exited in time, so a stuck child cannot hang the caller.
/// The blocking system calls (`poll`, `read`, `wait4`) run on a thread of their own, never on
/// the Swift concurrency pool. A child still running when the object is released is killed and
/// reaped in `deinit`, so error paths leave no process behind.
///
/// One reader and one waiter at a time: `readLine` and `wait` are not meant to be called
/// concurrently with themselves.
public final class ChildProcess: Sendable {
    /// Where one of the child's standard streams goes.
    public enum Redirect: Sendable {
        /// Shares ours.
        case inherit
        /// /dev/null.
        case null
        /// A pipe to us: for standard input we hold the write end (closing it gives the child
        /// EOF); for standard output we hold the read end (`readLine`).
        case pipe
        /// A file: read for input; for output created or truncated, then appended to (so
        /// standard output and error can share one file).
        case file(String)
    }

    /// How the child ended.
    public struct Termination: Sendable, CustomStringConvertible {
        /// The exit status, or nil when a signal ended it.
        public let exitCode: Int32?
        /// The signal that ended it, if one did.
        public let signal: Int32?
        /// Peak resident set size in KiB: the last VmHWM sampled from /proc while waiting, or
        /// `wait4`'s ru_maxrss where /proc is missing. (On Linux ru_maxrss is useless for a
        /// spawned child: exec carries the parent's high-water mark over, so every small child
        /// of a large parent would report the parent's size.)
        public let peakRSSKiB: Int
        /// User plus system CPU time the child used.
        public let cpuSeconds: Double
        /// When `wait4` returned: the child's end, to the precision of a thread wake-up.
        public let endedAt: ContinuousClock.Instant

        public var succeeded: Bool { exitCode == 0 }

        /// The same, with the peak RSS sampled from /proc when there is one.
        public func sampled(_ peakKiB: Int) -> Termination {
            guard peakKiB > 0 else { return self }
            return Termination(exitCode: exitCode, signal: signal, peakRSSKiB: peakKiB, cpuSeconds: cpuSeconds, endedAt: endedAt)
        }

        public var description: String {
            if let exitCode { return "exit status \(exitCode)" }
            return "signal \(signal ?? 0)"
        }
    }

    private struct State: Sendable {
        /// Output read past the last line handed out.
        var pending: [UInt8] = []
        var outputEnded = false
        var termination: Termination?
        var waiting = false
        var inputFD: Int32?
    }

    public let pid: pid_t
    /// A short name for messages (the executable's last path component).
    public let name: String
    /// Just before `posix_spawn`: where wall-clock timings of the child start.
    public let startedAt: ContinuousClock.Instant
    /// Read end of the child's standard output, when it is a pipe.
    private let outputFD: Int32?
    private let state: Mutex<State>

    /// Starts `executable` with `arguments` (argv[0] is the executable). Signals the parent may
    /// ignore or block (SIGPIPE, SIGTERM, SIGINT) are reset to their defaults in the child.
    public init(
        executable: String, arguments: [String],
        standardInput: Redirect = .null, standardOutput: Redirect = .inherit, standardError: Redirect = .inherit
    ) throws {
        name = URL(fileURLWithPath: executable).lastPathComponent
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Child ends of pipes: closed here once the child has them.
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        var inputFD: Int32?
        var outputFD: Int32?
        do {
            switch standardInput {
            case .inherit: break
            case .null: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            case .file(let path): posix_spawn_file_actions_addopen(&actions, 0, path, O_RDONLY, 0)
            case .pipe:
                let (read, write) = try Self.makePipe()
                childEnds.append(read)
                inputFD = write
                posix_spawn_file_actions_adddup2(&actions, read, 0)
            }
            for (target, redirect) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
                switch redirect {
                case .inherit: break
                case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
                case .file(let path):
                    posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
                case .pipe:
                    let (read, write) = try Self.makePipe()
                    childEnds.append(write)
                    if target == 1 { outputFD = read } else { childEnds.append(read) }
                    posix_spawn_file_actions_adddup2(&actions, write, target)
                }
            }
        } catch {
            if let inputFD { close(inputFD) }
            if let outputFD { close(outputFD) }
            throw error
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = Self.environment()
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        startedAt = ContinuousClock.now
        let rv = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rv == 0 else {
            if let inputFD { close(inputFD) }
            if let outputFD { close(outputFD) }
            throw CommandError(.spawnFailed, "cannot start \(executable): \(String(cString: strerror(rv)))")
        }
        self.pid = pid
        self.outputFD = outputFD
        self.state = Mutex(State(inputFD: inputFD))
    }

    deinit {
        let reaped = state.withLock { $0.termination != nil }
        if !reaped {
            // Nobody waited for it: make sure it does not outlive us. SIGKILL ends it promptly,
            // so this blocking waitpid is short.
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if let outputFD { close(outputFD) }
        if let inputFD = state.withLock({ $0.inputFD }) { close(inputFD) }
    }

    // MARK: Standard streams

    /// The next line of the child's standard output without its newline, or nil once the
    /// output ended. Throws `.timedOut` if no full line arrives within `timeout`, and
    /// `.childFailed` for a line longer than `limit` bytes.
    public func readLine(timeout: Duration, limit: Int = 4096) async throws -> String? {
        guard let fd = outputFD else {
            throw CommandError(.childFailed, "\(name)'s standard output is not a pipe")
        }
        let deadline = ContinuousClock.now + timeout
        let name = self.name
        let result: Result<String?, CommandError> = await Self.onThread { [self] in
            var (pending, ended) = state.withLock { ($0.pending, $0.outputEnded) }
            defer { state.withLock { $0.pending = pending; $0.outputEnded = ended } }
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    return .success(line)
                }
                if pending.count > limit {
                    return .failure(CommandError(.childFailed, "\(name) wrote a line longer than \(limit) bytes"))
                }
                if ended {
                    if pending.isEmpty { return .success(nil) }
                    defer { pending = [] }
                    return .success(String(decoding: pending, as: UTF8.self))
                }
                let left = deadline - ContinuousClock.now
                guard left > .zero else {
                    return .failure(CommandError(.timedOut, "\(name) wrote no full line within \(timeout)"))
                }
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
                let ready = poll(&descriptor, 1, milliseconds)
                if ready < 0 && errno != EINTR {
                    return .failure(CommandError(.childFailed, "poll on \(name)'s output: \(String(cString: strerror(errno)))"))
                }
                guard ready > 0 else { continue }
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    pending.append(contentsOf: chunk[..<count])
                } else if count == 0 || errno != EINTR {
                    ended = true
                }
            }
        }
        return try result.get()
    }

    /// Closes our end of the child's standard input: the child reads EOF.
    public func closeStandardInput() {
        if let fd = state.withLock({ state -> Int32? in defer { state.inputFD = nil }; return state.inputFD }) {
            close(fd)
        }
    }

    // MARK: Ending

    /// Waits for the child to exit. Past `timeout` it is killed (SIGKILL) and this throws
    /// `.timedOut`. Calling it again after it returned gives the same termination.
    public func wait(timeout: Duration) async throws -> Termination {
        let (termination, killed) = try await waitOrKill(timeout: timeout)
        if killed {
            throw CommandError(.timedOut, "\(name) (pid \(pid)) did not exit within \(timeout); killed it")
        }
        return termination
    }

    /// Asks the child to stop (SIGTERM) and waits `grace` for it; then kills it (SIGKILL).
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) async throws -> Termination {
        if state.withLock({ $0.termination == nil }) { kill(pid, SIGTERM) }
        return try await waitOrKill(timeout: grace).termination
    }

    /// Whether the child has not exited yet (it may be a zombie nobody reaped: that counts as
    /// exited). Linux only: reads /proc; elsewhere it says true until reaped.
    public var isRunning: Bool {
        if state.withLock({ $0.termination != nil }) { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else {
            return !FileManager.default.fileExists(atPath: "/proc")
        }
        // The state letter follows the parenthesised command name, which may itself hold spaces.
        guard let close = stat.lastIndex(of: ")") else { return true }
        let rest = stat[stat.index(after: close)...].drop { $0 == " " }
        return rest.first != "Z" && rest.first != "X"
    }

    /// Peak resident set size so far (VmHWM in /proc/<pid>/status), in KiB; nil when unknown.
    public var peakRSSKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return nil
    }

    /// User plus system CPU seconds used so far (/proc/<pid>/stat); nil when unknown.
    public var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private func waitOrKill(timeout: Duration) async throws -> (termination: Termination, killed: Bool) {
        let alreadyWaiting: Bool = state.withLock { state in
            if state.termination != nil || state.waiting { return true }
            state.waiting = true
            return false
        }
        if alreadyWaiting {
            guard let termination = state.withLock({ $0.termination }) else {
                throw CommandError(.childFailed, "\(name) (pid \(pid)) is already being waited for")
            }
            return (termination, false)
        }
        let pid = self.pid
        let result = await withTaskGroup(of: Termination?.self) { group -> (Termination, Bool) in
            group.addTask { await Self.reap(pid) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            // VmHWM only grows, so the last sample before exit is (nearly) the peak.
            let sampler = Task { [self] in
                var peak = 0
                while !Task.isCancelled {
                    if let now = peakRSSKiB { peak = max(peak, now) }
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return peak
            }
            var killed = false
            while let next = await group.next() {
                if let termination = next {
                    group.cancelAll()
                    sampler.cancel()
                    let sampled = await sampler.value
                    return (termination.sampled(sampled), killed)
                }
                if !killed {
                    // The deadline passed first (or the sleep was cancelled): the reaper thread
                    // returns as soon as the killed child is gone.
                    killed = true
                    kill(pid, SIGKILL)
                }
            }
            // Unreachable: the reaper always answers.
            sampler.cancel()
            return (Termination(exitCode: nil, signal: SIGKILL, peakRSSKiB: 0, cpuSeconds: 0, endedAt: .now), true)
        }
        state.withLock {
            $0.termination = result.0
            $0.waiting = false
        }
        return result
    }

    /// Blocks a thread of its own in `wait4` until `pid` exits.
    private static func reap(_ pid: pid_t) async -> Termination {
        await onThread {
            var status: Int32 = 0
            var usage = rusage()
            while wait4(pid, &status, 0, &usage) < 0 {
                if errno != EINTR {
                    return Termination(exitCode: nil, signal: nil, peakRSSKiB: 0, cpuSeconds: 0, endedAt: .now)
                }
            }
            let endedAt = ContinuousClock.now
            // WIFEXITED/WEXITSTATUS/WTERMSIG are macros Swift does not import; their Linux (and
            // BSD) definitions are these bit fields.
            let exited = status & 0x7f == 0
            let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
            return Termination(
                exitCode: exited ? (status >> 8) & 0xff : nil, signal: exited ? nil : status & 0x7f,
                peakRSSKiB: Int(usage.ru_maxrss), cpuSeconds: cpu, endedAt: endedAt)
        }
    }

    // MARK: Plumbing

    /// Runs `body` on a new thread, so blocking calls do not hold up the concurrency pool.
    public static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.start()
        }
    }

    /// A pipe whose ends are closed on exec, so only the ends dup'ed into a child reach it.
    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw CommandError(.spawnFailed, "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// Our environment as `envp` for the child, built from ProcessInfo rather than `environ`
    /// (a C global strict concurrency does not let us read). The caller frees the strings.
    private static func environment() -> [UnsafeMutablePointer<CChar>?] {
        ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    }
}

extension ChildProcess {
    /// The running executable's path (from /proc/self/exe): children of the same program.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
