import CZMQ
import Foundation
import Logging
import NIOCore
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolWire

/// The worker's side of the backend socket: one DEALER on a `ZMQReactor` thread, and the table of
/// pending opens and open streams it serves.
///
/// Threading: the mutable state lives in a `ReactorBound` box (`loop`), so touching it anywhere
/// but on the reactor thread (socket handlers, timers, closures handed over with `enqueue` or
/// `onReactor`, which hop through the box) traps instead of racing; everything else is
/// immutable, which makes the class plainly `Sendable`. Each method says which side calls it.
/// Swift tasks (one per open request, which then becomes the stream's reader, and one writer
/// per stream) talk to it only through `enqueue`/`onReactor` and a stream's `WorkerStream`.
final class WorkerCore: Sendable {
    /// What only the reactor thread touches.
    struct ReactorState {
        var socket: ZMQSocket?
        /// The message DATA bodies are built in (`sendData`); empty between sends.
        let dataMessage = OutgoingMessage()
        var opens: [UInt64: PendingOpen] = [:]
        var streams: [UInt64: Entry] = [:]
        var shuttingDown = false
        /// Told when `opens` and `streams` are both empty during shutdown.
        var idle: AsyncStream<Void>.Continuation?
    }

    /// A `zmq_msg_t` of our own. Owned: `zmq_msg_close` + deallocate in deinit.
    final class OutgoingMessage {
        let pointer: UnsafeMutablePointer<zmq_msg_t>

        init() {
            pointer = .allocate(capacity: 1)
            zmq_msg_init(pointer)
        }

        deinit {
            zmq_msg_close(pointer)
            pointer.deallocate()
        }
    }

    /// An OPEN waiting for the pool.
    struct PendingOpen {
        let stream: WorkerStream
        let task: Task<Void, Never>
        /// The request's deadline.
        let timer: ZMQReactor.Timer
    }

    /// An open stream, as the reactor thread sees it.
    final class Entry {
        let pipe: WorkerStream
        let peer: PeerStream
        /// The open task, now copying peer → client.
        let reader: Task<Void, Never>
        var writer: Task<Void, Never>?
        /// Client → peer bytes received and not yet credited back: never above the window.
        var unacknowledged = 0
        var clientFinished = false
        /// FINISH went to the client (the peer finished and everything was forwarded).
        var readDone = false
        /// The QUIC stream was finished after the client's last byte.
        var writeDone = false

        init(pipe: WorkerStream, peer: PeerStream, reader: Task<Void, Never>) {
            self.pipe = pipe
            self.peer = peer
            self.reader = reader
        }
    }

    /// Largest DATA body the worker sends: a QUIC read can return megabytes at once.
    static let maxDataFrame = 256 * 1024
    /// The QUIC code a stream is reset with when the worker gives it up (an ABORTED, a CANCEL,
    /// shutdown): fastn's "abandoned".
    static let abandonCode = ProtocolErrorCode.abandoned

    let reactor: ZMQReactor
    let settings: WorkerSettings
    let pool: PeerPool
    let logger: Logger
    /// Tasks that talk to the pool's endpoint run on its event loop: no thread switch per call.
    let executor: EventLoopTaskExecutor
    private let context: ZMQContext
    private let allocator = ByteBufferAllocator()
    /// Where SHUTDOWN's grace goes (to `Worker.run`).
    private let stopRequests: AsyncStream<Duration>.Continuation

    /// The reactor-thread state, checked on every access; the properties below forward to it.
    let loop: ReactorBound<ReactorState>

    private(set) var socket: ZMQSocket? {
        _read { yield loop.value.socket }
        _modify { yield &loop.value.socket }
    }
    var dataMessage: UnsafeMutablePointer<zmq_msg_t> { loop.value.dataMessage.pointer }
    var opens: [UInt64: PendingOpen] {
        _read { yield loop.value.opens }
        _modify { yield &loop.value.opens }
    }
    var streams: [UInt64: Entry] {
        _read { yield loop.value.streams }
        _modify { yield &loop.value.streams }
    }
    private(set) var shuttingDown: Bool {
        _read { yield loop.value.shuttingDown }
        _modify { yield &loop.value.shuttingDown }
    }
    private var idle: AsyncStream<Void>.Continuation? {
        _read { yield loop.value.idle }
        _modify { yield &loop.value.idle }
    }

    init(
        settings: WorkerSettings, pool: PeerPool, context: ZMQContext, logger: Logger,
        stopRequests: AsyncStream<Duration>.Continuation
    ) throws {
        self.settings = settings
        self.pool = pool
        self.context = context
        self.logger = logger
        self.stopRequests = stopRequests
        self.executor = pool.endpoint.taskExecutor
        let reactor = try ZMQReactor(name: "peerpool-worker-\(settings.index)")
        self.reactor = reactor
        self.loop = ReactorBound(ReactorState(), reactor: reactor)
    }

    // MARK: Lifecycle (Swift side)

    /// Starts the reactor thread, connects the DEALER and sends HELLO.
    func start() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            reactor.start { [self] in
                do {
                    try connect()
                    sendHello()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Runs `body` on the reactor thread and waits for it; throws `ZMQReactorStopped` (instead
    /// of waiting forever) when the reactor has stopped.
    func onReactor<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(ZMQReactorStopped) -> T {
        try await loop.run { _ in body() }
    }

    /// Queues `work` on the reactor thread and returns at once (dropped once the reactor has
    /// stopped: the streams it would serve are gone). The hop the copy loops use.
    func enqueue(_ work: @escaping @Sendable () -> Void) {
        loop.execute { _ in work() }
    }

    /// Stops the reactor (closing the socket after its linger, then terminating the context) and
    /// waits for its thread to end.
    func stop() async {
        reactor.stop()
        await reactor.stopped()
    }

    // MARK: Socket (reactor thread)

    private func connect() throws {
        let socket = try ZMQSocket(context, .dealer)
        // Before connect: the supervisor routes by it from the first message.
        try socket.setOption(ZMQ_ROUTING_ID, bytes: Array(settings.routingID.utf8))
        // No high-water mark: DEALER drops nothing, it blocks, and a blocked send would lose the
        // message (we never wait on the reactor). What is queued is bounded anyway: DATA by the
        // streams' windows, everything else by the requests the supervisor sent.
        try socket.setOption(ZMQ_SNDHWM, 0)
        try socket.setOption(ZMQ_RCVHWM, 0)
        // Let the last answers (ABORTED, ERROR at shutdown) reach a live supervisor; a dead one
        // ends this process through its standard input long before.
        try socket.setOption(ZMQ_LINGER, 1000)
        try socket.connect(settings.backendEndpoint)
        self.socket = socket
        reactor.watch(socket) { [unowned self] in readSocket() }
        reactor.onShutdown { [context] in
            // Closing lingers (above) until the last messages are out; terminating waits for that,
            // here on the ending reactor thread rather than on a Swift task's thread.
            socket.close()
            context.terminate()
        }
    }

    private func readSocket() {
        guard let socket else { return }
        // Bounded per wake-up, so work handed over with `execute` (DATA toward the client) gets
        // its turn; zmq_poll reports the socket again if more is queued.
        for _ in 0..<256 {
            let received: (frames: [ZMQFrame], truncated: Bool)?
            do { received = try socket.receive(maxParts: 2) } catch {
                logger.error("backend receive failed", metadata: ["error": "\(error)"])
                return
            }
            guard let (frames, truncated) = received else { return }
            handle(frames, truncated: truncated)
        }
    }

    private func handle(_ frames: [ZMQFrame], truncated: Bool) {
        let header: WireHeader
        do {
            header = try frames[0].withUnsafeBytes { bytes throws(WireError) in try WireHeader(decoding: bytes) }
        } catch {
            logger.warning("supervisor sent a bad header", metadata: ["error": "\(error)"])
            send(.error, id: error.id, body: error.jsonBody)
            return
        }
        if truncated {
            reject(header, WireError(.malformedFrame, "\(header.type) has more than two frames", id: header.id))
            return
        }
        let body = frames.count > 1 ? frames[1] : nil
        switch header.type {
        case .data: clientData(header.id, body)
        case .credit: clientCredit(header.id, body)
        case .open: open(header.id, body)
        case .finish: clientFinish(header.id)
        case .reset: clientReset(header.id, body)
        case .cancel: cancel(header.id)
        case .shutdown: shutdownRequested(body)
        default:
            reject(header, WireError(.unknownType, "a worker takes no \(header.type) messages", id: header.id))
        }
    }

    /// Answers a message the worker cannot take: ABORTED for stream messages, ERROR otherwise.
    private func reject(_ header: WireHeader, _ error: WireError) {
        logger.warning("rejected a message from the supervisor", metadata: ["wire.type": "\(header.type)", "error": "\(error)"])
        switch header.type {
        case .data, .finish, .reset, .credit: send(.aborted, id: header.id, body: error.jsonBody)
        default: send(.error, id: header.id, body: error.jsonBody)
        }
    }

    // MARK: Sending (reactor thread)

    func send(_ type: WireMessageType, id: UInt64, body: [UInt8]? = nil) {
        guard let socket else { return }
        guard let body else {
            report(socket.send(WireHeader(type, id: id), more: false), type)
            return
        }
        let result = socket.send(WireHeader(type, id: id), more: true)
        guard result == .sent else { return report(result, type) }
        report(socket.send(body, more: false), type)
    }

    func report(_ result: ZMQSocket.SendResult, _ type: WireMessageType) {
        guard result != .sent else { return }
        // Without a high-water mark this means the socket is unusable; the supervisor notices the
        // missing heartbeats.
        logger.error("cannot send to the supervisor", metadata: ["wire.type": "\(type)", "zmq.result": "\(result)"])
    }

    private func sendHello() {
        send(.hello, id: 0, body: HelloBody(index: settings.index, generation: settings.generation, pid: getpid()).encoded())
    }

    /// HEARTBEAT, with the pool's connection count the caller fetched. *Reactor thread.*
    func sendHeartbeat(connections: Int) {
        send(.heartbeat, id: 0, body: HeartbeatBody(connections: connections, streams: streams.count, requests: opens.count).encoded())
    }

    // MARK: Shutdown (reactor thread)

    private func shutdownRequested(_ body: ZMQFrame?) {
        // A body that is not SHUTDOWN's still stops the worker, with the default grace.
        let grace = (try? ShutdownBody(frame: body))?.grace ?? ShutdownBody.defaultGrace
        logger.info("shutdown requested", metadata: ["worker.grace_ms": "\(OpenRequest.milliseconds(grace))"])
        shuttingDown = true
        stopRequests.yield(grace)
    }

    /// Refuses new OPENs from now on; the stream yields once nothing is pending or open.
    func beginShutdown() -> AsyncStream<Void> {
        shuttingDown = true
        let (signal, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        idle = continuation
        checkIdle()
        return signal
    }

    func checkIdle() {
        guard let idle, opens.isEmpty, streams.isEmpty else { return }
        idle.yield()
    }

    /// The grace period is over: fail what is pending (ERROR `shutting_down`) and abort what is
    /// open (ABORTED `shutting_down`).
    func abandonAll() {
        for (id, open) in opens {
            reactor.cancel(open.timer)
            open.task.cancel()
            open.stream.close()
            send(.error, id: id, body: WireError(.shuttingDown, "the worker shut down before the stream opened").jsonBody)
        }
        opens = [:]
        for id in Array(streams.keys) {
            abort(id, WireError(.shuttingDown, "the worker shut down (grace period over) while the stream was open"))
        }
    }

    // MARK: Helpers

    /// Copies a DATA body into a ByteBuffer for the QUIC stream (the frame dies with the handler).
    func byteBuffer(_ frame: ZMQFrame) -> ByteBuffer {
        frame.withUnsafeBytes { bytes in
            var buffer = allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            return buffer
        }
    }
}
