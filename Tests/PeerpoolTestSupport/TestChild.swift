import Foundation
import Synchronization

/// A child process of a test: the one place the tests start a process.
///
/// Its standard output and error are read on threads of their own into a bounded transcript;
/// standard output lines also wait, unread, until a test takes them (`nextLine`). Every wait
/// has a deadline and otherwise wakes only on an event (a line, an end of output, the exit),
/// never by polling, and none blocks a thread of the cooperative pool: the exit is learnt from
/// Foundation's termination handler, not `waitUntilExit`. Errors name the child and quote its
/// transcript.
///
/// A child still running when this object goes is killed (SIGKILL) and reaped in `deinit`;
/// `withTestChild` and `run` do the same, awaited, within the test.
public final class TestChild: Sendable {
    /// `Command.name`.
    public let name: String
    public let pid: Int32
    /// Held so Foundation keeps watching the child; its state is read from `record`.
    private let process: Process
    let record: ChildRecord
    /// Our end of the child's standard input while it is an open pipe.
    private let input: Mutex<FileHandle?>

    /// How long `kill()` waits for a SIGKILLed child to be reaped before giving up on it.
    public static let killWait: Duration = .seconds(60)

    /// Starts `command`.
    public convenience init(_ command: Command) throws {
        try self.init(command, collectLimit: nil)
    }

    /// Starts `command`; with `collectLimit`, its raw output is kept (up to that many bytes
    /// per stream) for `run`, and standard output lines are not queued.
    init(_ command: Command, collectLimit: Int?) throws {
        let process = Process()
        process.executableURL = command.executable
        process.arguments = command.arguments
        if let environment = command.environment { process.environment = environment }
        if let directory = command.workingDirectory { process.currentDirectoryURL = directory }

        let stdout = Pipe()
        process.standardOutput = stdout
        let stderr: Pipe?
        switch command.standardError {
        case .captured:
            let pipe = Pipe()
            process.standardError = pipe
            stderr = pipe
        case .standardOutput:
            stderr = nil
            process.standardError = stdout
        }
        var input: FileHandle?
        var inputFile: FileHandle?
        switch command.standardInput {
        case .pipe:
            let pipe = Pipe()
            process.standardInput = pipe
            input = pipe.fileHandleForWriting
        case .null:
            process.standardInput = FileHandle.nullDevice
        case .contents(let data):
            let file = try Self.unlinkedFile(holding: data, for: command.name)
            process.standardInput = file
            inputFile = file
        }
        defer { try? inputFile?.close() }   // the child has its own descriptor

        let record = ChildRecord(command, streams: stderr == nil ? 1 : 2, collectLimit: collectLimit)
        // Runs on a thread of Foundation's once the child was reaped. Holds the record, not
        // this object, so the last release of this object still finds the child to kill.
        process.terminationHandler = { process in record.exited(Termination(process)) }
        do {
            try process.run()
        } catch {
            throw TestChildError(.startFailed, child: command.name, "cannot start \(command.executable.path): \(error)")
        }
        readToEnd(stdout.fileHandleForReading) { record.receive($0, from: .standardOutput) } atEnd: { record.end(.standardOutput) }
        if let stderr {
            readToEnd(stderr.fileHandleForReading) { record.receive($0, from: .standardError) } atEnd: { record.end(.standardError) }
        }
        self.name = command.name
        self.pid = process.processIdentifier
        self.process = process
        self.record = record
        self.input = Mutex(input)
    }

    /// Kills a child still running and waits until it is reaped (briefly: SIGKILL cannot be
    /// ignored), blocking this thread, so that a test that lets a server go finds its port
    /// closed. Not awaited work: prefer `kill()`, `withTestChild` or `run` where you can await.
    deinit {
        guard termination == nil else { return }
        signal(SIGKILL)
        _ = record.exited.wait(timeout: .now() + .seconds(10))
    }

    // MARK: Standard input

    /// Writes `line` and a newline to the child's standard input (a command for a test server).
    public func writeLine(_ line: String) throws {
        try input.withLock { input in
            guard let input else {
                throw TestChildError(.inputClosed, child: name, "cannot write \(line.debugDescription): standard input is closed")
            }
            do {
                try input.write(contentsOf: Array((line + "\n").utf8))
            } catch {
                throw TestChildError(.inputClosed, child: name, "cannot write \(line.debugDescription): \(error)", transcript: transcript)
            }
        }
    }

    /// Ends the child's standard input: EOF, a `--exit-on-stdin-eof` child's signal to leave.
    public func closeStandardInput() {
        input.withLock { input in
            try? input?.close()
            input = nil
        }
    }

    // MARK: Signals and exit

    /// How the child ended; nil while it runs.
    public var termination: Termination? {
        record.state.withLock { $0.termination }
    }

    /// Sends `signal`, unless the child already ended (its pid may then name another process).
    public func signal(_ signal: Int32) {
        record.state.withLock { state in
            if state.termination == nil { _ = Foundation.kill(pid, signal) }
        }
    }

    /// How the child ended, once it did; nil if it still runs after `timeout` or the task is
    /// cancelled. With `includingOutput`, also waits for its standard output and error to reach
    /// EOF, so every line it printed is queued (a grandchild holding them keeps that waiting).
    /// Does not kill it.
    public func exit(within timeout: Duration, includingOutput: Bool = false) async -> Termination? {
        await record.wait(until: .now + timeout) { state in
            includingOutput && !state.outputEnded ? nil : state.termination
        }
    }

    /// The child's exit within `timeout`; if it still runs then (or the task is cancelled), it
    /// is killed and `killed` says so.
    public func exitOrKill(within timeout: Duration) async -> Ending {
        if let termination = await exit(within: timeout) { return Ending(termination: termination, killed: false) }
        return Ending(termination: await kill(), killed: true)
    }

    /// SIGTERM, then `exitOrKill(within: grace)`: the way to ask a server to shut down.
    public func terminate(grace: Duration) async -> Ending {
        signal(SIGTERM)
        return await exitOrKill(within: grace)
    }

    /// SIGKILL, and how the child ended once it is reaped; waits up to `killWait` even if the
    /// task is cancelled, so a cleanup in a cancelled test still leaves no child behind.
    @discardableResult
    public func kill() async -> Termination? {
        signal(SIGKILL)
        return await Task { await self.exit(within: Self.killWait) }.value
    }

    // MARK: Helpers

    /// A file holding `data`, open for reading and already unlinked, for a child's standard input.
    private static func unlinkedFile(holding data: Data, for name: String) throws -> FileHandle {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-input-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw TestChildError(.startFailed, child: name, "cannot create the input file \(path)")
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TestChildError(.startFailed, child: name, "cannot open the input file \(path)")
        }
        return handle
    }
}
