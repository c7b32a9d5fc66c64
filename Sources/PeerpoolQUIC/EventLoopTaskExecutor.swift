import NIOCore

/// Runs Swift tasks on an endpoint's event loop.
///
/// Every call into a connection or stream hops to that loop; a task that mostly talks to one
/// endpoint (the pool's request path, the acceptor's per-stream work) avoids a thread switch per
/// `await` by preferring this executor (`withTaskExecutorPreference`, or
/// `addTask(executorPreference:)`). Default actors then run there too. Only for work that never
/// blocks: anything slow here stalls every connection of the endpoint.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // Immutable after init; EventLoop is thread-safe to `execute` on.
    private let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
