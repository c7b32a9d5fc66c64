import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport

/// A `peerpool` child process for the CLI tests. Every wait is bounded: a child that overstays
/// its deadline is killed (SIGKILL), and one still running when this object goes is killed too.
///
/// Blocking calls (reading a pipe, waiting for the child) run on dispatch threads, never on
/// Swift's cooperative pool, which has only as many threads as cores and is shared by every
/// test running in parallel.
final class CLIProcess: @unchecked Sendable {
    /// What a finished command left behind.
    struct Output: Sendable, CustomStringConvertible {
        let status: Int32
        let stdout: String
        let stderr: String
        /// The command overstayed its deadline and was killed.
        let timedOut: Bool

        var description: String {
            "status \(status)\(timedOut ? " (killed at its deadline)" : ""), stdout \(stdout.debugDescription), stderr \(stderr.debugDescription)"
        }
    }

    let process = Process()

    private init(_ arguments: [String], standardInput: Any, standardOutput: Any, standardError: Any) throws {
        process.executableURL = peerpoolExecutable
        process.arguments = arguments
        process.standardInput = standardInput
        process.standardOutput = standardOutput
        process.standardError = standardError
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Waits for the child to exit; kills it if it has not within `timeout`.
    func waitForExit(timeout: Duration) async -> (status: Int32, timedOut: Bool) {
        let pid = process.processIdentifier
        let (status, timedOut) = await Self.blocking(timeout: timeout, onTimeout: { kill(pid, SIGKILL) }) {
            self.process.waitUntilExit()
            return self.process.terminationStatus
        }
        return (status, timedOut)
    }

    /// Runs `peerpool <arguments>` to its end with `input` as standard input (a file, so the
    /// child may leave it unread), and collects what it printed. Killed after `timeout`.
    static func run(_ arguments: [String], input: String = "", timeout: Duration = .seconds(30)) async throws -> Output {
        let inputPath = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-cli-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: inputPath, contents: Data(input.utf8)),
              let inputHandle = FileHandle(forReadingAtPath: inputPath) else {
            throw CLIProcessError(message: "cannot create the input file \(inputPath)")
        }
        defer {
            try? inputHandle.close()
            try? FileManager.default.removeItem(atPath: inputPath)
        }
        let stdout = Pipe()
        let stderr = Pipe()
        let child = try CLIProcess(arguments, standardInput: inputHandle, standardOutput: stdout, standardError: stderr)
        // Read both pipes while the child runs, so that neither can fill up and stall it. Both
        // reach their end when the child exits, even when it is killed.
        async let out = blocking { stdout.fileHandleForReading.readDataToEndOfFile() }
        async let err = blocking { stderr.fileHandleForReading.readDataToEndOfFile() }
        let (status, timedOut) = await child.waitForExit(timeout: timeout)
        return Output(
            status: status, stdout: String(decoding: await out, as: UTF8.self),
            stderr: String(decoding: await err, as: UTF8.self), timedOut: timedOut)
    }

    // MARK: Bounded blocking

    /// `body` on a dispatch thread.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }

    private enum Outcome<T: Sendable>: Sendable {
        case finished(T)
        case deadline(passed: Bool)
    }

    /// `body` on a dispatch thread. If it has not returned after `timeout`, `onTimeout` runs and
    /// must make it return (by killing the child whose pipe or exit it waits for).
    static func blocking<T: Sendable>(
        timeout: Duration, onTimeout: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () -> T
    ) async -> (T, timedOut: Bool) {
        await withTaskGroup(of: Outcome<T>.self) { group in
            group.addTask { .finished(await blocking(body)) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                } catch {
                    return .deadline(passed: false)
                }
                onTimeout()
                return .deadline(passed: true)
            }
            var value: T?
            var timedOut = false
            for await outcome in group {
                switch outcome {
                case .finished(let result):
                    value = result
                    group.cancelAll()
                case .deadline(let passed):
                    timedOut = passed
                }
            }
            // Both children are done, and only the first one yields a value.
            return (value!, timedOut)
        }
    }
}

extension CLIProcess {
    /// `peerpool listen --exit-on-stdin-eof` on a free loopback port, once it printed its
    /// `LISTENING` line and its ID52s.
    final class Listener: @unchecked Sendable {
        let child: CLIProcess
        let host: String
        let port: Int
        let identities: [ID52]
        /// Closing it gives the listener EOF: its signal to exit.
        private let stdin = Pipe()

        init(_ arguments: [String] = [], timeout: Duration = .seconds(40)) async throws {
            let stdout = Pipe()
            child = try CLIProcess(
                ["listen", "--address", "127.0.0.1:0", "--exit-on-stdin-eof"] + arguments,
                standardInput: stdin, standardOutput: stdout, standardError: FileHandle.standardError)
            let pid = child.process.processIdentifier
            let reader = stdout.fileHandleForReading
            let (lines, timedOut) = await CLIProcess.blocking(timeout: timeout, onTimeout: { kill(pid, SIGKILL) }) {
                Self.readAnnouncement(reader)
            }
            let fields = lines.first?.split(separator: " ") ?? []
            guard !timedOut, fields.count == 4, fields[0] == "LISTENING", let port = Int(fields[2]), let count = Int(fields[3]),
                  lines.count == count + 1 else {
                kill(pid, SIGKILL)
                throw CLIProcessError(
                    message: "peerpool listen did not announce itself within \(timeout): \(lines.prefix(3))")
            }
            host = String(fields[1])
            self.port = port
            identities = try lines.dropFirst().map { try ID52(parsing: $0) }
        }

        /// `<id52>@<host>:<port>` of identity `index`.
        func address(_ index: Int = 0) -> String { "\(identities[index])@\(host):\(port)" }

        /// Ends standard input and waits for the listener to exit (killing it after `timeout`).
        func stop(timeout: Duration = .seconds(15)) async -> (status: Int32, timedOut: Bool) {
            try? stdin.fileHandleForWriting.close()
            return await child.waitForExit(timeout: timeout)
        }

        /// The `LISTENING <host> <port> <n>` line and the n lines after it, or what arrived
        /// before the pipe ended.
        private static func readAnnouncement(_ reader: FileHandle) -> [String] {
            var pending = Data()
            var lines: [String] = []
            var expected = Int.max
            while lines.count < expected {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                var start = pending.startIndex
                while lines.count < expected, let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: pending[start..<newline], as: UTF8.self))
                    start = pending.index(after: newline)
                    if lines.count == 1, let count = lines[0].split(separator: " ").last.flatMap({ Int($0) }) {
                        expected = count + 1
                    }
                }
                pending = Data(pending[start...])
            }
            return lines
        }
    }
}

struct CLIProcessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
