import CZMQ
import Synchronization

/// A libzmq context: its I/O threads and the sockets made from it.
///
/// Owns the context handle (`zmq_ctx_new`; `zmq_ctx_term` in `terminate()` or deinit). Terminating
/// waits until every socket of the context is closed, so close sockets (on their own thread)
/// first. libzmq documents the context itself as thread-safe.
public final class ZMQContext: @unchecked Sendable {
    /// Owned; terminated once.
    let handle: UnsafeMutableRawPointer
    /// Set by the first `terminate()`: `Supervisor.run()` and `shutdown()` may both get there,
    /// on different threads, and zmq_ctx_term must run once.
    private let terminated = Atomic<Bool>(false)

    public init(ioThreads: Int32 = 1) throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError("zmq_ctx_new") }
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        // Thousands of clients and pipes are normal for a supervisor.
        zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, 65_536)
        self.handle = handle
    }

    /// Call after every socket is closed. Safe from any thread, any number of times: only the
    /// first call terminates (and blocks until libzmq is done); the others return at once.
    public func terminate() {
        guard terminated.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit { terminate() }
}
