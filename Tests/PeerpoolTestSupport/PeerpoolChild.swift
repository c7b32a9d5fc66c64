import Foundation

/// A running `peerpool <arguments>` child process whose standard input we hold open (its EOF
/// tells a child started with `--exit-on-stdin-eof` to leave). Terminated, if still running,
/// when this object goes.
public final class PeerpoolChild: @unchecked Sendable {
    public let process = Process()
    private let stdin = Pipe()

    /// Starts `executable` (default: `peerpoolExecutable`) with `arguments`, its stdout into
    /// `standardOutput`; stderr is inherited unless `standardError` is given.
    public init(_ arguments: [String], executable: URL = peerpoolExecutable, standardOutput: Pipe, standardError: Any? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = standardOutput
        process.standardInput = stdin
        if let standardError { process.standardError = standardError }
        try process.run()
    }

    /// SIGKILL: the peer vanishes without a word, as a crashed process does.
    public func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}
