/// Why a supervisor could not start or run. Equality compares only the code.
public struct SupervisorError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The runtime directory is missing, unusable or not private.
        public static let runtimeDirectory = Code("runtime_directory")
        /// Another supervisor holds the runtime directory's lock.
        public static let alreadyRunning = Code("already_running")
        /// A ZeroMQ socket could not be created or bound.
        public static let socket = Code("socket")
        /// No identity could be loaded.
        public static let identity = Code("identity")
        /// The worker executable could not be found.
        public static let workerCommand = Code("worker_command")
        /// The supervisor has shut down: its routing thread takes no more work.
        public static let stopped = Code("stopped")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public static func == (a: SupervisorError, b: SupervisorError) -> Bool { a.code == b.code }
}
