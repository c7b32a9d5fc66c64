#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a child process ended: an exit status or the signal that killed it.
///
/// Both are nil only when the status could not be learned: someone else reaped the child (the
/// process ignores SIGCHLD, so the kernel reaps children itself).
public struct ProcessTermination: Sendable, Hashable, CustomStringConvertible {
    /// The status it passed to `exit`, or nil when a signal ended it.
    public let exitCode: Int32?
    /// The signal that ended it, or nil when it exited.
    public let signal: Int32?

    public init(exitCode: Int32?, signal: Int32?) {
        self.exitCode = exitCode
        self.signal = signal
    }

    /// Decodes a status from `waitpid`. `WIFEXITED`, `WEXITSTATUS` and `WTERMSIG` are macros
    /// Swift does not import; these are their Linux definitions. Stopped children are never
    /// reported to us (no `WUNTRACED`), so a status is either an exit or a signal.
    init(waitStatus status: Int32) {
        let signal = status & 0x7f
        if signal == 0 {
            self.init(exitCode: (status >> 8) & 0xff, signal: nil)
        } else {
            self.init(exitCode: nil, signal: signal)
        }
    }

    /// Whether it exited with status 0.
    public var succeeded: Bool { exitCode == 0 }

    /// "exited normally", "exited with status 3", "killed by SIGKILL (signal 9)", or for a signal
    /// without a name here "killed by signal 42".
    public var description: String {
        if let exitCode {
            return exitCode == 0 ? "exited normally" : "exited with status \(exitCode)"
        }
        if let signal {
            guard let name = Self.signalName(signal) else { return "killed by signal \(signal)" }
            return "killed by \(name) (signal \(signal))"
        }
        return "ended with an unknown status (reaped elsewhere)"
    }

    /// The name of a common signal ("SIGKILL"), or nil for others. Numbers differ between
    /// architectures, so this matches the C constants rather than literals.
    public static func signalName(_ signal: Int32) -> String? {
        switch signal {
        case SIGHUP: "SIGHUP"
        case SIGINT: "SIGINT"
        case SIGQUIT: "SIGQUIT"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGKILL: "SIGKILL"
        case SIGUSR1: "SIGUSR1"
        case SIGSEGV: "SIGSEGV"
        case SIGUSR2: "SIGUSR2"
        case SIGPIPE: "SIGPIPE"
        case SIGALRM: "SIGALRM"
        case SIGTERM: "SIGTERM"
        case SIGSTOP: "SIGSTOP"
        default: nil
        }
    }
}
