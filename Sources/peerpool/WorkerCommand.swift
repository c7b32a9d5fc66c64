import ArgumentParser
import Foundation
import Logging
import PeerpoolSupervisor
import PeerpoolWorker

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `peerpool worker`: one worker process of `peerpool serve`, started by the supervisor, never
/// by hand (hidden from help).
///
/// Order matters: the parent-death signal is armed first (so a supervisor dying at any later
/// point takes us with it), then one line of `WorkerSettings` JSON is read from standard input,
/// then the worker runs. The supervisor keeps our standard input open for as long as it lives:
/// end-of-file there means it is gone, and there is nobody left to drain to, so the process
/// exits at once with status 70. SIGTERM drains like SHUTDOWN with a short grace period.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve one shard of a peerpool supervisor (started by `peerpool serve`).",
        shouldDisplay: false
    )

    @Option(name: .customLong("supervisor-pid"), help: ArgumentHelp("The supervisor's pid; the worker exits if its parent is not this process.", valueName: "pid"))
    var supervisorPID: Int32

    @Option(help: ArgumentHelp("Log level on standard error: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel = "info"

    /// The settings line's bound: the secret keys of thousands of identities fit easily.
    static let maxSettingsBytes = 16 * 1024 * 1024
    /// Exit status when the supervisor vanished (EX_SOFTWARE).
    static let supervisorGoneStatus: Int32 = 70
    /// SIGTERM's grace period for open streams.
    static let signalGracePeriod: Duration = .seconds(1)

    func validate() throws {
        guard supervisorPID > 1 else { throw ValidationError("--supervisor-pid must be a process id above 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a log level") }
    }

    func run() async throws {
        let expectedParent = supervisorPID
        // The parent-death signal belongs to the thread that sets it (and ends with it): set it
        // on the main thread, which lives as long as the process.
        try await MainActor.run { try ParentDeath.arm(expectedParent: expectedParent) }

        var logger = Logger(label: "peerpool.worker", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info

        let line = try await Self.watchStandardInput(logger: logger)
        let settings: WorkerSettings
        do {
            settings = try JSONDecoder().decode(WorkerSettings.self, from: Data(line))
        } catch {
            // Not the decoder's text: it could quote the secret keys.
            throw ValidationError("standard input's first line is not WorkerSettings JSON (\(line.count) bytes)")
        }
        let worker = try Worker(settings: settings, logger: logger)

        // The supervisor stops us with SHUTDOWN; SIGTERM (an operator, or the supervisor's
        // teardown) drains too. SIGINT is ignored: a Ctrl-C reaches the supervisor as well, and
        // it decides how its workers stop.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let terminate = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        terminate.setEventHandler { worker.stop(gracePeriod: Self.signalGracePeriod) }
        terminate.resume()
        defer { terminate.cancel() }

        try await worker.run()
    }

    /// Starts a thread that reads standard input: it hands back the first line (the settings;
    /// bounded), then keeps reading and ends the process when the input ends.
    private static func watchStandardInput(logger: Logger) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
            let thread = Thread {
                var pending: CheckedContinuation<[UInt8], any Error>? = continuation
                var line: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 64 * 1024)
                while true {
                    let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { break }
                    guard let waiting = pending else { continue }  // after the settings: only EOF matters
                    let bytes = chunk[0..<count]
                    if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                        line += bytes[..<newline]
                    } else {
                        line += bytes
                    }
                    if line.count > maxSettingsBytes {
                        pending = nil
                        waiting.resume(throwing: ValidationError("the settings line on standard input is longer than \(maxSettingsBytes) bytes"))
                    } else if bytes.contains(UInt8(ascii: "\n")) {
                        pending = nil
                        waiting.resume(returning: line)
                        line = []
                    }
                }
                logger.notice(pending == nil ? "supervisor gone (standard input ended); exiting" : "supervisor gone before sending settings; exiting")
                _exit(supervisorGoneStatus)
            }
            thread.name = "peerpool-worker-stdin"
            thread.start()
        }
    }
}
