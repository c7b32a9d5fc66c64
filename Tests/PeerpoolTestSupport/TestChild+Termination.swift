import Foundation

extension TestChild {
    /// How a child ended.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// It exited with this code.
        case exited(Int32)
        /// This signal killed it.
        case signalled(Int32)

        init(_ process: Process) {
            switch process.terminationReason {
            case .exit: self = .exited(process.terminationStatus)
            case .uncaughtSignal: self = .signalled(process.terminationStatus)
            }
        }

        /// The exit code, or the killing signal negated (-9 after SIGKILL), so one number tells
        /// "exited 9" from "killed by 9".
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): -signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exit \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// How a wait for a child's exit that kills it after a deadline ended (`exitOrKill`,
    /// `terminate`).
    public struct Ending: Sendable, CustomStringConvertible {
        /// Nil only if even SIGKILL did not end it within `TestChild.killWait`.
        public let termination: Termination?
        /// It had not exited by the deadline and was killed.
        public let killed: Bool

        /// `termination`'s status: the exit code, or the killing signal negated.
        public var status: Int32? { termination?.status }

        public var description: String {
            "\(termination.map(String.init(describing:)) ?? "still running")\(killed ? " (killed at its deadline)" : "")"
        }
    }
}
