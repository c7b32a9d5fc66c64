import Foundation

/// Why a command or benchmark could not run: a stable `code` to match on and a message saying
/// what to do.
///
/// For a missing tool, a child that did not answer in time, or figures that cannot be trusted
/// (a download of the wrong size). A benchmark that ran but missed its bar is not an error (it
/// prints FAIL and exits 0). ArgumentParser prints the message and exits non-zero.
public struct CommandError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// Open set of error kinds, as static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A program the benchmark runs is not installed.
        public static let missingTool = Code("missing_tool")
        /// posix_spawn, pipe or a file operation failed.
        public static let spawnFailed = Code("spawn_failed")
        /// A child or a transfer did not answer within its deadline (the child was killed).
        public static let timedOut = Code("timed_out")
        /// A child exited with a failure status or said something we do not understand.
        public static let childFailed = Code("child_failed")
        /// A transfer delivered the wrong number of bytes.
        public static let verificationFailed = Code("verification_failed")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public var errorDescription: String? { description }

    public static func == (lhs: CommandError, rhs: CommandError) -> Bool { lhs.code == rhs.code }
}
