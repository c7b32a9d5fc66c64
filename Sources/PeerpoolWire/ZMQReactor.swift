import CZMQ
import Foundation
import Synchronization

/// One thread that owns a set of ZeroMQ sockets (and plain file descriptors) and runs a
/// `zmq_poll` loop over them.
///
/// Why a thread: libzmq sockets must stay on one thread, and `zmq_poll` is how libzmq wants to be
/// waited on. Everything that touches the sockets — the read handlers, the timers, the work
/// handed over with `execute` — runs on this thread, one thing at a time, so the state those
/// closures share needs no locks. Other threads (Swift tasks) only call `execute`, which queues
/// the work and wakes the loop through an eventfd, written only when the queue was empty.
///
/// Methods marked *reactor thread* must be called on it (from a handler, timer or `execute`);
/// they check it with a precondition.
public final class ZMQReactor: @unchecked Sendable {
    public struct Timer: Hashable, Sendable {
        fileprivate let id: UInt64
    }

    private struct Watch {
        var socket: ZMQSocket?
        var descriptor: Int32
        var onReadable: () -> Void
    }

    private struct Inbox {
        var work: [@Sendable () -> Void] = []
        var wakePending = false
        var stopping = false
    }

    public let name: String
    /// Owned eventfd; closed when the loop ends.
    private let wakeDescriptor: Int32
    private let inbox = Mutex(Inbox())
    private let finished = Mutex<[CheckedContinuation<Void, Never>]?>([])

    // Reactor-thread state.
    private var watches: [Watch] = []
    private var items: [zmq_pollitem_t] = []
    private var itemsStale = true
    private var timers = ReactorTimerQueue<() -> Void>()
    /// The loop thread's pthread_t, 0 until it runs; atomic because any thread may ask.
    private let thread = Atomic<UInt>(0)
    private var running = true
    private var shutdownHooks: [() -> Void] = []

    /// Whether `start` ran: the loop owns the eventfd from then on.
    private let started = Atomic<Bool>(false)

    deinit {
        // A started reactor is retained by its thread until the loop ended and closed the eventfd.
        if !started.load(ordering: .acquiring) { close(wakeDescriptor) }
    }

    public init(name: String) throws {
        self.name = name
        let descriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard descriptor >= 0 else { throw ZMQError("eventfd", errno: errno) }
        wakeDescriptor = descriptor
    }

    /// Starts the loop's thread. `setup` runs first on it (create and watch sockets there).
    public func start(_ setup: @escaping @Sendable () -> Void = {}) {
        precondition(execute(setup), "the \(name) reactor was stopped before it started")
        started.store(true, ordering: .releasing)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            let reactor = Unmanaged<ZMQReactor>.fromOpaque(context!).takeRetainedValue()
            reactor.thread.store(UInt(pthread_self()), ordering: .releasing)
            reactor.nameThisThread()
            reactor.loop()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "cannot start the \(name) thread: error \(rc)")
        pthread_detach(thread)
    }

    /// `zmq-` and the name without its `peerpool-` prefix, cut to the kernel's 15 bytes.
    var threadName: String {
        let short = name.hasPrefix("peerpool-") ? String(name.dropFirst("peerpool-".count)) : name
        return String(decoding: Array("zmq-\(short)".utf8.prefix(15)), as: UTF8.self)
    }

    /// Names the calling thread `threadName`, so top, perf and gdb tell the reactors apart.
    /// Through /proc: Swift's Glibc does not export `pthread_setname_np`. Best effort.
    private func nameThisThread() {
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = Array(threadName.utf8).withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }

    public var isOnReactorThread: Bool {
        let thread = thread.load(ordering: .acquiring)
        return thread != 0 && pthread_equal(pthread_t(thread), pthread_self()) != 0
    }

    private func assertOnReactorThread(_ function: StaticString = #function) {
        precondition(isOnReactorThread, "\(function) must run on the \(name) reactor thread")
    }

    /// Runs `work` on the reactor thread, soon. Safe from any thread.
    ///
    /// Returns false, and drops `work` without running it, once `stop()` was called (as NIO's
    /// `execute` refuses on a shut-down event loop): a caller that waits for `work` — a
    /// continuation it resumes — must resume it itself then, or it waits forever.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        let (accepted, wake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard !inbox.stopping else { return (false, false) }
            inbox.work.append(work)
            if inbox.wakePending { return (true, false) }
            inbox.wakePending = true
            return (true, true)
        }
        if wake { wakeUp() }
        return accepted
    }

    /// Runs `body` on the reactor thread and returns its result; throws `ZMQReactorStopped`
    /// instead of waiting forever when the reactor has stopped (or stops before `body` ran).
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(ZMQReactorStopped) -> T {
        let result: T? = await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            if !execute({ continuation.resume(returning: body()) }) {
                continuation.resume(returning: nil)
            }
        }
        guard let result else { throw ZMQReactorStopped(reactor: name) }
        return result
    }

    private func wakeUp() {
        var one: UInt64 = 1
        _ = write(wakeDescriptor, &one, 8)
    }

    /// Ends the loop after the work queued so far; the shutdown hooks (closing sockets) run on the
    /// reactor thread as it ends. Safe from any thread, any number of times.
    public func stop() {
        let wake = inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.stopping = true
            inbox.wakePending = true
            return true
        }
        if wake { wakeUp() }
    }

    /// Waits until the loop has ended and its shutdown hooks ran.
    public func stopped() async {
        await withCheckedContinuation { continuation in
            let done = finished.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters!.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Blocking form of `stopped()` for threads that are not in Swift concurrency. Never call it
    /// on the reactor thread.
    public func waitUntilStopped() {
        let semaphore = DispatchSemaphore(value: 0)
        Task { await self.stopped(); semaphore.signal() }
        semaphore.wait()
    }

    // MARK: Reactor thread

    /// Calls `onReadable` whenever `socket` has a message queued. *Reactor thread.*
    public func watch(_ socket: ZMQSocket, _ onReadable: @escaping () -> Void) {
        assertOnReactorThread()
        watches.append(Watch(socket: socket, descriptor: -1, onReadable: onReadable))
        itemsStale = true
    }

    /// Calls `onReadable` whenever `descriptor` is readable (a pidfd, a pipe). *Reactor thread.*
    public func watch(descriptor: Int32, _ onReadable: @escaping () -> Void) {
        assertOnReactorThread()
        watches.append(Watch(socket: nil, descriptor: descriptor, onReadable: onReadable))
        itemsStale = true
    }

    /// *Reactor thread.*
    public func unwatch(_ socket: ZMQSocket) {
        assertOnReactorThread()
        watches.removeAll { $0.socket === socket }
        itemsStale = true
    }

    /// *Reactor thread.*
    public func unwatch(descriptor: Int32) {
        assertOnReactorThread()
        watches.removeAll { $0.socket == nil && $0.descriptor == descriptor }
        itemsStale = true
    }

    /// Runs `body` once, `delay` from now. *Reactor thread.*
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> Timer {
        schedule(at: .now + delay, body)
    }

    /// *Reactor thread.*
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ body: @escaping () -> Void) -> Timer {
        assertOnReactorThread()
        return Timer(id: timers.schedule(at: deadline, body))
    }

    /// *Reactor thread.*
    public func cancel(_ timer: Timer) {
        assertOnReactorThread()
        timers.cancel(timer.id)
    }

    /// Runs `hook` on the reactor thread when the loop ends (close sockets here). *Reactor thread.*
    public func onShutdown(_ hook: @escaping () -> Void) {
        assertOnReactorThread()
        shutdownHooks.append(hook)
    }

    // MARK: The loop

    private func loop() {
        while running {
            if itemsStale { rebuildItems() }
            let timeout = pollTimeoutMilliseconds()
            let count = items.count
            let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32(count), timeout) }
            if rc < 0 {
                let error = zmq_errno()
                if error == EINTR { continue }
                if error == ETERM { break }
                preconditionFailure("zmq_poll on the \(name) reactor: \(ZMQError("zmq_poll", errno: error))")
            }
            if rc > 0 {
                // Handlers may add or remove watches: act on a snapshot of who was readable.
                var ready: [() -> Void] = []
                for (index, item) in items.enumerated() where item.revents & Int16(ZMQ_POLLIN) != 0 {
                    if index == 0 {
                        ready.append { [unowned self] in drainInbox() }
                    } else if index - 1 < watches.count {
                        ready.append(watches[index - 1].onReadable)
                    }
                }
                for handler in ready where running { handler() }
            }
            runDueTimers()
        }
        for hook in shutdownHooks { hook() }
        shutdownHooks = []
        watches = []
        timers.removeAll()
        close(wakeDescriptor)
        let waiters = finished.withLock { waiters in
            defer { waiters = nil }
            return waiters ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    private func rebuildItems() {
        items = [zmq_pollitem_t(socket: nil, fd: wakeDescriptor, events: Int16(ZMQ_POLLIN), revents: 0)]
        for watch in watches {
            items.append(zmq_pollitem_t(socket: watch.socket?.handle, fd: watch.descriptor, events: Int16(ZMQ_POLLIN), revents: 0))
        }
        itemsStale = false
    }

    private func pollTimeoutMilliseconds() -> Int {
        guard let deadline = timers.nextDeadline() else { return -1 }
        let remaining = deadline - .now
        if remaining <= .zero { return 0 }
        let (seconds, attoseconds) = remaining.components
        return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    private func drainInbox() {
        var value: UInt64 = 0
        _ = read(wakeDescriptor, &value, 8)
        let (work, stopping) = inbox.withLock { inbox in
            defer {
                inbox.work = []
                inbox.wakePending = false
            }
            return (inbox.work, inbox.stopping)
        }
        for item in work { item() }
        if stopping { running = false }
    }

    private func runDueTimers() {
        let now = ContinuousClock.now
        while running, let body = timers.popDue(now: now) { body() }
    }
}

/// Work handed to a reactor that has stopped: it will never run.
public struct ZMQReactorStopped: Error, Sendable, CustomStringConvertible {
    public static let code = "reactor_stopped"
    /// The reactor's name.
    public var reactor: String

    public var description: String {
        "\(Self.code): the \(reactor) thread has stopped and runs no more work; the object it served was shut down"
    }
}
