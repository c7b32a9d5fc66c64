import Foundation
import Synchronization

/// A Python peer process (or any line-printing child) and the lines it printed: stdout lines
/// wait unread until a test takes them, both streams go to a bounded transcript, and every
/// wait is polled with a deadline, so a timed-out wait loses nothing. Its standard input stays
/// open for its lifetime: EOF tells a server to exit. The IrohPeer and FastnPythonPeer fixtures
/// build on it.
public final class PythonLineChild: Sendable {
    private struct Output {
        var unread: [String] = []
        var transcript: [String] = []
        var stdoutClosed = false
        var stderrClosed = false
    }

    private let process = Process()
    private let stdin = Pipe()
    private let output = Mutex(Output())
    private let transcriptLimit: Int
    /// "iroh peer", "fastn peer": how errors name the child.
    private let name: String
    /// Builds the error a failed wait throws, from its message (transcript included).
    private let makeError: @Sendable (String) -> any Error

    /// Starts `executable` with `arguments`; stdout and stderr lines longer than `lineLimit`
    /// bytes are dropped, and the transcript keeps the last `transcriptLimit` lines.
    public init(
        executable: URL, arguments: [String], name: String, lineLimit: Int, transcriptLimit: Int,
        makeError: @escaping @Sendable (String) -> any Error
    ) throws {
        self.name = name
        self.transcriptLimit = transcriptLimit
        self.makeError = makeError
        process.executableURL = executable
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // The reading threads hold `self` until the child's pipes reach EOF (it exited).
        readLines(from: stdout.fileHandleForReading, limit: lineLimit) { [self] line in
            output.withLock {
                $0.unread.append(line)
                record("stdout: \(line)", in: &$0)
            }
        } atEnd: { [self] in
            output.withLock { $0.stdoutClosed = true }
        }
        readLines(from: stderr.fileHandleForReading, limit: lineLimit) { [self] line in
            output.withLock { record("stderr: \(line)", in: &$0) }
        } atEnd: { [self] in
            output.withLock { $0.stderrClosed = true }
        }
    }

    public var transcript: String { output.withLock { $0.transcript.joined(separator: "\n") } }

    /// The transcript once the child closed its stderr, waiting at most `timeout`.
    public func finalTranscript(within timeout: Duration = .seconds(3)) async -> String {
        _ = try? await Self.poll(until: .now + timeout) { self.output.withLock { $0.stderrClosed } ? true : nil }
        return transcript
    }

    /// Runs `body` on the unread stdout lines (it may remove what it takes).
    public func withUnread<T>(_ body: (inout [String]) -> T) -> T {
        output.withLock { body(&$0.unread) }
    }

    /// The first line `take` removes from the unread stdout lines, polled until `timeout`.
    /// Throws, with the transcript (and `hint(transcript)`), if the child exits or the time
    /// passes first; `description` names the line in that message.
    public func awaitLine(
        within timeout: Duration, description: String, hint: (String) -> String = { _ in "" },
        _ take: @escaping @Sendable (inout [String]) -> String?
    ) async throws -> String {
        let found = try await Self.poll(until: .now + timeout) { () -> String?? in
            if let line = self.withUnread(take) { return .some(line) }
            return self.output.withLock { $0.stdoutClosed } ? .some(nil) : nil
        }
        if case .some(.some(let line)) = found { return line }
        let what = found == nil ? "printed no \(description) line within \(timeout)" : "exited without printing \(description)"
        let transcript = await finalTranscript()
        throw makeError("\(name) \(what)\(hint(transcript))\n--- \(name) output ---\n\(transcript)")
    }

    /// The exit status once the child exited and its stdout reached EOF (so every line is
    /// queued); nil if that takes longer than `timeout`.
    public func exitStatus(within timeout: Duration) async throws -> Int32? {
        try await Self.poll(until: .now + timeout) {
            self.output.withLock { $0.stdoutClosed } && !self.process.isRunning ? self.process.terminationStatus : nil
        }
    }

    /// Writes `line` and a newline to the child's standard input (a command for a test server).
    public func writeLine(_ line: String) throws {
        try stdin.fileHandleForWriting.write(contentsOf: Array((line + "\n").utf8))
    }

    /// Kills the child (SIGKILL: a test peer holds nothing worth a graceful exit).
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    private func record(_ line: String, in output: inout Output) {
        if output.transcript.count >= transcriptLimit { output.transcript.removeFirst() }
        output.transcript.append(line)
    }

    /// `check()`'s first non-nil result, checked every 10 ms; nil once `deadline` passed.
    private static func poll<T>(until deadline: ContinuousClock.Instant, _ check: () -> T?) async throws -> T? {
        while true {
            if let value = check() { return value }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
