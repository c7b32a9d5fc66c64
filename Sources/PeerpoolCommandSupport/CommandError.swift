import PeerpoolErrors
import Foundation

/// Why a command or benchmark could not run: a stable `code` to match on and a message saying
/// what to do.
///
/// For a missing tool, a child that did not answer in time, or figures that cannot be trusted
/// (a download of the wrong size). A benchmark that ran but missed its bar is not an error (it
/// prints FAIL and exits 0). ArgumentParser prints the message and exits non-zero.
public typealias CommandError = LayerError<CommandLayer>

/// Marks CommandError's errors (see ``LayerError``).
public enum CommandLayer {}

extension ErrorCode where Domain == CommandError {
    /// A socket the command was asked to serve on could not be bound (in use, not an address here).
    public static let bindFailed = Self("bind_failed")
    /// No supervisor's socket where `status` looked.
    public static let noSupervisor = Self("no_supervisor")
    /// A program the benchmark runs is not installed.
    public static let missingTool = Self("missing_tool")
    /// posix_spawn, pipe or a file operation failed.
    public static let spawnFailed = Self("spawn_failed")
    /// A child or a transfer did not answer within its deadline (the child was killed).
    public static let timedOut = Self("timed_out")
    /// A child exited with a failure status or said something we do not understand.
    public static let childFailed = Self("child_failed")
    /// A transfer delivered the wrong number of bytes.
    public static let verificationFailed = Self("verification_failed")
}
