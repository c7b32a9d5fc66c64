import Foundation

extension TestChild {
    /// What a child run to its end (`run`) left behind.
    public struct Output: Sendable, CustomStringConvertible {
        /// `Command.name`.
        public let name: String
        /// Nil only if even SIGKILL did not end it within `TestChild.killWait`.
        public let termination: Termination?
        /// It overstayed its deadline, or the waiting task was cancelled, and was killed.
        public let timedOut: Bool
        /// Everything it wrote to standard output (standard error too, if merged).
        public let stdout: String
        public let stderr: String
        /// More than `run`'s `outputLimit` arrived; the rest was dropped.
        public let truncated: Bool
        /// Its last lines of both streams, marked `stdout:` or `stderr:` (`TestChild.transcript`).
        public let transcript: String

        /// The exit code, or the killing signal negated; nil if it was killed at its deadline.
        public var status: Int32? { timedOut ? nil : termination?.status }

        /// `stdout`'s lines, without their newlines.
        public var lines: [String] {
            var lines = stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.last == "" { lines.removeLast() }
            return lines
        }

        public var description: String {
            let ending = timedOut ? "none (killed at its deadline)" : termination.map { "\($0.status)" } ?? "none (still running)"
            return "\(name): status \(ending)\(truncated ? ", output truncated" : ""), stdout \(stdout.debugDescription), "
                + "stderr \(stderr.debugDescription)"
        }
    }

    /// Runs `command` to its end and collects what it wrote (up to `outputLimit` bytes per
    /// stream). Killed if it still runs after `timeout` or the task is cancelled: the output
    /// then says `timedOut`. Returns only once the child is reaped.
    public static func run(_ command: Command, within timeout: Duration, outputLimit: Int = 16 << 20) async throws -> Output {
        let child = try TestChild(command, collectLimit: outputLimit)
        return try await withCleanup {
            let ending = await child.exitOrKill(within: timeout)
            // The pipes still hold what it wrote last: read them to EOF, uncancelled (a
            // cancelled run still reports its output) and bounded (a grandchild may hold them).
            _ = await Task { await child.exit(within: .seconds(10), includingOutput: true) }.value
            let transcript = child.transcript
            return child.record.state.withLock { state in
                Output(
                    name: child.name, termination: ending.termination, timedOut: ending.killed,
                    stdout: String(decoding: state.collectedStdout, as: UTF8.self),
                    stderr: String(decoding: state.collectedStderr, as: UTF8.self), truncated: state.collectionTruncated,
                    transcript: transcript)
            }
        } cleanup: {
            await child.kill()
        }
    }

    /// `peerpool <arguments>` run to its end (`run`), with `input` as its standard input.
    public static func runPeerpool(_ arguments: [String], input: String = "", within timeout: Duration = .seconds(30)) async throws -> Output {
        var command = Command.peerpool(arguments)
        command.standardInput = .contents(Data(input.utf8))
        return try await run(command, within: timeout)
    }
}
