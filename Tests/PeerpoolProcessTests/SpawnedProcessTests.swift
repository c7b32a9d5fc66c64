import Foundation
import Testing

@testable import PeerpoolProcess

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Real child processes (/bin/sh, cat, head, sleep). Every wait polls the pidfd with a deadline;
/// nothing sleeps and hopes.
@Suite(.timeLimit(.minutes(3)))
struct SpawnedProcessTests {
    /// Upper bound for anything a child is expected to do.
    static let deadline: Duration = .seconds(10)
    /// How long a child that should still be running is watched for an (unwanted) exit.
    static let stillRunningWindow: Duration = .milliseconds(300)

    // MARK: Exit and signals

    @Test func spawn_exitStatus3_isSeenThroughPidfdThenReaped() throws {
        let child = try SpawnedProcess.spawn(executable: "/bin/sh", arguments: ["-c", "exit 3"], standardInput: [])
        defer { child.close() }
        #expect(Self.waitForExit(child, within: Self.deadline))
        let termination = try #require(child.reap())
        #expect(termination == ProcessTermination(exitCode: 3, signal: nil))
        #expect(termination.description == "exited with status 3")
        // Reaped once; the same value afterwards.
        #expect(child.reap() == termination)
    }

    @Test func signal_kill_endsSleepAndDescriptionNamesSIGKILL() throws {
        let child = try Self.spawnSleeper()
        defer { child.close() }
        #expect(child.reap() == nil)
        child.signal(SIGKILL)
        #expect(Self.waitForExit(child, within: Self.deadline))
        let termination = try #require(child.reap())
        #expect(termination.signal == SIGKILL)
        #expect(termination.exitCode == nil)
        #expect(termination.description.contains("SIGKILL"), "\(termination)")
        // After reaping, signalling is a no-op (the pid may belong to someone else).
        child.signal(SIGKILL)
    }

    @Test func reap_whileRunning_returnsNil() throws {
        let child = try Self.spawnSleeper()
        defer { child.close() }
        #expect(child.reap() == nil)
        #expect(!Self.waitForExit(child, within: .milliseconds(50)))
        #expect(child.reap() == nil)
        child.signal(SIGTERM)
        #expect(Self.waitForExit(child, within: Self.deadline))
        #expect(child.reap()?.signal == SIGTERM)
    }

    @Test func spawn_whenParentIgnoresAndBlocksSignals_childHasDefaults() throws {
        // A Swift server commonly ignores SIGPIPE; so does this test, until it has spawned.
        let previousPipeHandler = Glibc.signal(SIGPIPE, SIG_IGN)
        defer { _ = Glibc.signal(SIGPIPE, previousPipeHandler) }
        // Block SIGTERM on this thread only for the spawn (posix_spawn copies the caller's mask).
        var term = sigset_t()
        sigemptyset(&term)
        sigaddset(&term, SIGTERM)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &term, &previous)
        // A shell cannot un-ignore a signal ignored at entry, so these only die if reset.
        let pipeChild = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "kill -PIPE $$; exit 0"], standardInput: [])
        let termChild = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "kill -TERM $$; exit 0"], standardInput: [])
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        defer {
            pipeChild.close()
            termChild.close()
        }
        #expect(Self.waitForExit(pipeChild, within: Self.deadline))
        #expect(Self.waitForExit(termChild, within: Self.deadline))
        #expect(pipeChild.reap()?.signal == SIGPIPE)
        #expect(termChild.reap()?.signal == SIGTERM)
    }

    // MARK: Standard input

    @Test func standardInput_largerThanPipeBuffer_arrivesComplete() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/stdin.bin"
        let bytes = Self.pattern(count: 1_000_000)
        let child = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "exec head -c 1000000 > \"$0\"", path], standardInput: bytes)
        defer { child.close() }
        #expect(Self.waitForExit(child, within: Self.deadline))
        #expect(child.reap() == ProcessTermination(exitCode: 0, signal: nil))
        let received = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(received.count == bytes.count)
        #expect(received == bytes)
    }

    @Test func spawn_withLargeInputTheChildNeverReads_returnsAtOnce() throws {
        // Were spawn to write 4 MB blocking, it would never return: the child reads nothing.
        let started = ContinuousClock.now
        let child = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "exec sleep 100"], standardInput: Self.pattern(count: 4_000_000))
        #expect(ContinuousClock.now - started < Self.deadline)
        child.signal(SIGKILL)
        #expect(Self.waitForExit(child, within: Self.deadline))
        #expect(child.reap()?.signal == SIGKILL)
        child.close()
    }

    @Test func standardInput_staysOpenUntilClose_thenChildSeesEOF() throws {
        let child = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", Self.drainThenExit(7)], standardInput: Array("config".utf8))
        defer { child.close() }
        #expect(!Self.waitForExit(child, within: Self.stillRunningWindow), "child saw EOF before close()")
        #expect(child.reap() == nil)
        let watched = dup(child.exitDescriptor)  // close() closes the pidfd; keep watching a copy
        defer { _ = Glibc.close(watched) }
        child.close()
        child.close()  // idempotent
        #expect(Self.waitForExit(descriptor: watched, within: Self.deadline))
        #expect(child.reap() == ProcessTermination(exitCode: 7, signal: nil))
    }

    @Test func close_whileInputIsStillBeingWritten_stopsTheWriterAndChildSeesEOF() throws {
        // The child reads nothing until the test releases it through a FIFO, so most of the
        // 1 MB is still with the writer thread when close() runs. Afterwards the child reads what
        // the pipe held and then EOF: fewer than all the bytes.
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gate = directory + "/gate"
        let count = directory + "/count"
        #expect(mkfifo(gate, 0o600) == 0)
        let child = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "read go < \"$0\"; exec wc -c > \"$1\"", gate, count],
            standardInput: Self.pattern(count: 1_000_000))
        defer { child.close() }
        let watched = dup(child.exitDescriptor)
        defer { _ = Glibc.close(watched) }
        child.close()
        // O_RDWR on a FIFO does not block (Linux); hold it open until the child has read the line.
        let gateDescriptor = open(gate, O_RDWR | O_CLOEXEC)
        #expect(gateDescriptor >= 0)
        defer { _ = Glibc.close(gateDescriptor) }
        #expect(write(gateDescriptor, "go\n", 3) == 3)
        #expect(Self.waitForExit(descriptor: watched, within: Self.deadline))
        #expect(child.reap() == ProcessTermination(exitCode: 0, signal: nil))
        let text = try String(contentsOfFile: count, encoding: .utf8)
        let received = try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(received > 0 && received < 1_000_000, "child read \(received) bytes")
    }

    @Test func secondChild_doesNotHoldTheFirstChildsStandardInput() throws {
        let first = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", Self.drainThenExit(5)], standardInput: [])
        let second = try Self.spawnSleeper()
        defer {
            first.close()
            second.close()
        }
        let watched = dup(first.exitDescriptor)
        defer { _ = Glibc.close(watched) }
        first.close()
        // Had the second child inherited the first one's write end, cat would never see EOF.
        #expect(Self.waitForExit(descriptor: watched, within: Self.deadline))
        #expect(first.reap() == ProcessTermination(exitCode: 5, signal: nil))
        #expect(second.reap() == nil)
        second.signal(SIGKILL)
        #expect(Self.waitForExit(second, within: Self.deadline))
        #expect(second.reap()?.signal == SIGKILL)
    }

    @Test func deinit_ofRunningChild_killsAndReapsIt() throws {
        var child: SpawnedProcess? = try Self.spawnSleeper()
        let pid = try #require(child?.pid)
        child = nil
        // Reaped in deinit: no such child of ours any more.
        var status: Int32 = 0
        #expect(waitpid(pid, &status, WNOHANG) == -1)
        #expect(errno == ECHILD)
    }

    // MARK: Errors

    @Test func spawn_missingExecutable_throwsProcessSpawnError() throws {
        let error = try #require(throws: ProcessSpawnError.self) {
            try SpawnedProcess.spawn(
                executable: "/nonexistent/peerpool", arguments: [], standardInput: Array(repeating: 1, count: 200_000))
        }
        #expect(error.code == .cannotSpawn)
        #expect(error.errno == ENOENT)
        #expect(error.executable == "/nonexistent/peerpool")
        #expect(error.message.hasPrefix("cannot start worker /nonexistent/peerpool: No such file or directory"))
    }

    // MARK: ProcessTermination

    @Test func termination_descriptions() {
        #expect(ProcessTermination(exitCode: 0, signal: nil).description == "exited normally")
        #expect(ProcessTermination(exitCode: 3, signal: nil).description == "exited with status 3")
        #expect(ProcessTermination(exitCode: nil, signal: SIGKILL).description == "killed by SIGKILL (signal 9)")
        #expect(ProcessTermination(exitCode: nil, signal: SIGSEGV).description == "killed by SIGSEGV (signal 11)")
        #expect(ProcessTermination(exitCode: nil, signal: 42).description == "killed by signal 42")
        #expect(ProcessTermination(exitCode: 0, signal: nil).succeeded)
        #expect(!ProcessTermination(exitCode: nil, signal: SIGTERM).succeeded)
    }

    @Test func termination_decodesWaitStatus() {
        #expect(ProcessTermination(waitStatus: 3 << 8) == ProcessTermination(exitCode: 3, signal: nil))
        #expect(ProcessTermination(waitStatus: 0) == ProcessTermination(exitCode: 0, signal: nil))
        #expect(ProcessTermination(waitStatus: SIGKILL) == ProcessTermination(exitCode: nil, signal: SIGKILL))
        // Core dumped: bit 0x80 beside the signal.
        #expect(ProcessTermination(waitStatus: SIGSEGV | 0x80) == ProcessTermination(exitCode: nil, signal: SIGSEGV))
    }

    @Test func signalNames_coverTheCommonSignals() {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGABRT: "SIGABRT",
            SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM",
            SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGBUS: "SIGBUS", SIGTRAP: "SIGTRAP",
            SIGSTOP: "SIGSTOP",
        ]
        for (signal, name) in names { #expect(ProcessTermination.signalName(signal) == name) }
    }

    // MARK: ParentDeath
    // arm() itself is not called: PR_SET_PDEATHSIG on the test runner would kill it when the
    // thread that spawned it exits.

    @Test func parentDeathCheck_withTheRealParent_passes() throws {
        try ParentDeath.check(expectedParent: getppid(), actualParent: getppid())
    }

    @Test func parentDeathCheck_withAnotherParent_throwsParentGone() throws {
        let error = try #require(throws: ParentDeathError.self) {
            try ParentDeath.check(expectedParent: 4242, actualParent: 1)
        }
        #expect(error.code == .parentGone)
        #expect(error.expectedParent == 4242)
        #expect(error.actualParent == 1)
        #expect(error.description.contains("4242"))
    }

    /// A pipe the parent forgot to mark close-on-exec (as Foundation's Process pipes are) must not
    /// live on in the child: its reader would never see the end.
    @Test func descriptorsWithoutCloseOnExec_doNotReachTheChild() throws {
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let child = try SpawnedProcess.spawn(executable: "/bin/sh", arguments: ["-c", Self.drainThenExit(0)], standardInput: [])
        defer {
            child.signal(SIGKILL)
            _ = Self.waitForExit(child, within: .seconds(10))
            child.close()
        }
        close(ends[1])
        // The end of the pipe (readable, read returns 0) arrives at once, since no process holds
        // the write end any more; the child still runs, waiting on its standard input.
        let ended = Self.waitForExit(descriptor: ends[0], within: .seconds(5))
        #expect(ended, "the child holds the parent's pipe")
        var byte: UInt8 = 0
        if ended { #expect(read(ends[0], &byte, 1) == 0) }
        #expect(child.reap() == nil)
    }

    // MARK: Helpers

    /// `sleep 100` (exec'd, so the pid is the sleep itself), with an empty standard input.
    static func spawnSleeper() throws -> SpawnedProcess {
        try SpawnedProcess.spawn(executable: "/bin/sh", arguments: ["-c", "exec sleep 100"], standardInput: [])
    }

    /// A shell script that reads its standard input to EOF and exits with `status`. Shell
    /// built-ins only (no `cat` child), so killing the shell leaves nothing behind even when a
    /// test fails with the input still open.
    static func drainThenExit(_ status: Int32) -> String {
        "while read -r line; do :; done; exit \(status)"
    }

    static func waitForExit(_ process: SpawnedProcess, within timeout: Duration) -> Bool {
        waitForExit(descriptor: process.exitDescriptor, within: timeout)
    }

    /// Whether the pidfd `descriptor` becomes readable (the process exited) within `timeout`.
    static func waitForExit(descriptor: Int32, within timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        // Bounded in time by the deadline and in count (only EINTR repeats before it).
        for _ in 0..<1_000 {
            let left = deadline - ContinuousClock.now
            let milliseconds = max(0, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready == 0 || errno != EINTR { return false }
        }
        return false
    }

    /// Deterministic bytes that are not all alike, so a reordering or a short copy shows.
    static func pattern(count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 251) }
    }

    /// A fresh 0700 directory under the temporary directory; the caller removes it.
    static func temporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "/peerpool-spawn-XXXXXX").utf8CString)
        let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let path else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return String(cString: path)
    }
}
