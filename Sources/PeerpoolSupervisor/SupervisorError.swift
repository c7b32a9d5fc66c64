import PeerpoolErrors

/// Why a supervisor could not start or run. Equality compares only the code.
public typealias SupervisorError = LayerError<SupervisorLayer>

/// Marks SupervisorError's errors (see ``LayerError``).
public enum SupervisorLayer {}

extension ErrorCode where Domain == SupervisorError {
    /// The runtime directory is missing, unusable or not private.
    public static let runtimeDirectory = Self("runtime_directory")
    /// Another supervisor holds the runtime directory's lock.
    public static let alreadyRunning = Self("already_running")
    /// A ZeroMQ socket could not be created or bound.
    public static let socket = Self("socket")
    /// No identity could be loaded.
    public static let identity = Self("identity")
    /// The worker executable could not be found.
    public static let workerCommand = Self("worker_command")
    /// The supervisor has shut down: its routing thread takes no more work.
    public static let stopped = Self("stopped")
}
