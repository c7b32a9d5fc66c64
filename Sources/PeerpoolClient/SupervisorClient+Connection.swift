import CZMQ
import Foundation
import Logging
import NIOCore
import PeerpoolWire

/// A `SupervisorClient`'s state on its reactor thread: the DEALER socket, its monitor, the
/// requests waiting for an answer and the open streams.
///
/// The client hands it to the reactor in `@Sendable` closures. Its mutable state lives in a
/// `ReactorBound` box, so every access is checked to be on the reactor thread (a precondition,
/// not a comment), and nothing here needs a lock.
///
/// Continuations stored here are resumed exactly once: by the answer, by CANCEL, by the answer
/// deadline, or by `failAll` (supervisor lost, client closed), whichever comes first, and each
/// of those removes the entry before resuming it.
final class ClientConnection: Sendable {
    enum Waiter {
        case open(window: Int, CheckedContinuation<SupervisedStreamState, any Error>)
        case status(CheckedContinuation<SupervisorStatus, any Error>)

        var name: String {
            switch self {
            case .open: "OPEN"
            case .status: "STATUS"
            }
        }

        func fail(_ error: any Error) {
            switch self {
            case .open(_, let continuation): continuation.resume(throwing: error)
            case .status(let continuation): continuation.resume(throwing: error)
            }
        }
    }

    struct PendingRequest {
        var waiter: Waiter
        /// When the client gives up waiting (the request's timeout + answerSlack).
        var deadline: ContinuousClock.Instant
        var started: ContinuousClock.Instant
    }

    /// How often the answer deadlines are checked while requests are pending.
    static let deadlineScanInterval: Duration = .milliseconds(50)
    /// Messages read per wake-up before other sockets get a turn (zmq_poll reports the socket
    /// again if more are queued).
    static let receiveBatch = 256

    let reactor: ZMQReactor
    let configuration: SupervisorClient.Configuration
    let logger: Logger
    private let context: ZMQContext

    /// What only the reactor thread touches.
    private struct ReactorState {
        var socket: ZMQSocket?
        var monitor: ZMQSocket?
        var pending: [UInt64: PendingRequest] = [:]
        var streams: [UInt64: SupervisedStreamState] = [:]
        var deadlineTimerArmed = false
        /// Set by `failAll` for good (client closed): later work fails with it at once.
        var closedError: WireError?
    }

    /// The reactor-thread state, checked on every access; the properties below forward to it.
    private let loop: ReactorBound<ReactorState>

    private var socket: ZMQSocket? {
        _read { yield loop.value.socket }
        _modify { yield &loop.value.socket }
    }
    private var monitor: ZMQSocket? {
        _read { yield loop.value.monitor }
        _modify { yield &loop.value.monitor }
    }
    private var pending: [UInt64: PendingRequest] {
        _read { yield loop.value.pending }
        _modify { yield &loop.value.pending }
    }
    private(set) var streams: [UInt64: SupervisedStreamState] {
        _read { yield loop.value.streams }
        _modify { yield &loop.value.streams }
    }
    private var deadlineTimerArmed: Bool {
        _read { yield loop.value.deadlineTimerArmed }
        _modify { yield &loop.value.deadlineTimerArmed }
    }
    private var closedError: WireError? {
        _read { yield loop.value.closedError }
        _modify { yield &loop.value.closedError }
    }

    init(
        reactor: ZMQReactor, context: ZMQContext, configuration: SupervisorClient.Configuration, logger: Logger
    ) {
        self.reactor = reactor
        self.context = context
        self.loop = ReactorBound(ReactorState(), reactor: reactor)
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Lifecycle

    /// First work on the reactor thread: open the DEALER and the PAIR that reports its
    /// disconnects, connect, watch them, and close them (and the context) when the loop ends —
    /// also when a step here throws and the caller stops the reactor.
    func start(connectingTo endpoint: String) throws {
        // Strong captures: the reactor drops its watches, timers and hooks when its loop ends,
        // which breaks the cycle.
        reactor.onShutdown { [self] in
            // The monitored socket first: closing it ends libzmq's side of the monitor too.
            self.socket?.close()
            self.socket = nil
            self.monitor?.close()
            self.monitor = nil
            context.terminate()
        }
        let socket = try ZMQSocket(context, .dealer)
        self.socket = socket
        // Unlimited queues: the credits bound each stream's data, and a request must never be
        // dropped because a queue was full.
        try socket.setOption(ZMQ_RCVHWM, 0)
        try socket.setOption(ZMQ_SNDHWM, 0)
        let monitor = try socket.monitor(context, events: ZMQMonitorEvent.disconnected, name: "peerpool-client")
        self.monitor = monitor
        try socket.connect(endpoint)
        reactor.watch(socket) { [self] in receiveMessages() }
        reactor.watch(monitor) { [self] in receiveMonitorEvents() }
    }

    /// Fails every pending request and open stream with `error` (supervisor lost or client
    /// closed). After `client_closed` the connection takes no more work.
    func failAll(_ error: WireError) {
        if error.code == .clientClosed { closedError = error }
        let requests = pending
        pending = [:]
        let open = streams
        streams = [:]
        for (id, request) in requests.sorted(by: { $0.key < $1.key }) {
            var error = error
            error.id = id
            request.waiter.fail(error)
        }
        for (_, stream) in open.sorted(by: { $0.key < $1.key }) {
            stream.terminate(error, reset: nil)
        }
    }

    // MARK: Requests

    func open(id: UInt64, body: [UInt8], window: Int, deadline: ContinuousClock.Instant, continuation: CheckedContinuation<SupervisedStreamState, any Error>) {
        begin(id: id, waiter: .open(window: window, continuation), deadline: deadline, type: .open, body: body)
    }

    func status(id: UInt64, deadline: ContinuousClock.Instant, continuation: CheckedContinuation<SupervisorStatus, any Error>) {
        begin(id: id, waiter: .status(continuation), deadline: deadline, type: .status, body: nil)
    }

    private func begin(id: UInt64, waiter: Waiter, deadline: ContinuousClock.Instant, type: WireMessageType, body: [UInt8]?) {
        if let closedError { return waiter.fail(closedError) }
        if let error = send(WireHeader(type, id: id), body) { return waiter.fail(error) }
        pending[id] = PendingRequest(waiter: waiter, deadline: deadline, started: .now)
        armDeadlineTimer()
    }

    /// The caller's task was cancelled: withdraw the request (CANCEL for an OPEN; a STATUS is
    /// simply forgotten) and throw `CancellationError`. The supervisor's later `cancelled`
    /// ERROR is then an answer to no one and ignored; a late OPENED is reset.
    func cancelRequest(id: UInt64) {
        guard let request = pending.removeValue(forKey: id) else { return }
        if case .open = request.waiter { _ = send(WireHeader(.cancel, id: id), nil) }
        request.waiter.fail(CancellationError())
    }

    /// One timer, rescheduled every `deadlineScanInterval` while anything is pending: no timer
    /// (and no task) per request.
    private func armDeadlineTimer() {
        guard !deadlineTimerArmed, !pending.isEmpty else { return }
        deadlineTimerArmed = true
        reactor.schedule(after: Self.deadlineScanInterval) { [weak self] in
            guard let self else { return }
            deadlineTimerArmed = false
            expireRequests()
            armDeadlineTimer()
        }
    }

    private func expireRequests() {
        let now = ContinuousClock.now
        let expired = pending.filter { $0.value.deadline <= now }
        for (id, request) in expired.sorted(by: { $0.key < $1.key }) {
            pending[id] = nil
            if case .open = request.waiter { _ = send(WireHeader(.cancel, id: id), nil) }
            request.waiter.fail(WireError(
                .timeout,
                "the supervisor did not answer \(request.waiter.name) within \(formatSeconds(now - request.started)) "
                    + "(the request's timeout plus \(formatSeconds(configuration.answerSlack)) of slack)",
                id: id))
        }
    }

    // MARK: Receiving

    private func receiveMessages() {
        for _ in 0..<Self.receiveBatch {
            guard let socket else { return }
            let message: (frames: [ZMQFrame], truncated: Bool)?
            do { message = try socket.receive(maxParts: 2) } catch {
                logger.debug("receiving from the supervisor failed", metadata: ["peerpool.error": "\(error)"])
                return
            }
            guard let message else { return }
            guard !message.truncated, let first = message.frames.first else {
                logger.debug("ignoring a message of more than two frames from the supervisor")
                continue
            }
            handle(first, body: message.frames.count > 1 ? message.frames[1] : nil)
        }
    }

    private func receiveMonitorEvents() {
        var lost = false
        for _ in 0..<Self.receiveBatch {
            guard let monitor, let event = try? ZMQMonitorEvent.read(monitor) else { break }
            if event.event == ZMQMonitorEvent.disconnected { lost = true }
        }
        guard lost else { return }
        // What the supervisor sent before it went (a FINISH, an answer) is still queued on the
        // socket: take it first, so only what really was cut off fails.
        receiveMessages()
        guard !pending.isEmpty || !streams.isEmpty else { return }
        logger.debug("lost the connection to the supervisor", metadata: [
            "peerpool.requests": "\(pending.count)", "peerpool.streams": "\(streams.count)",
        ])
        failAll(WireError(.supervisorLost, "the connection to the peerpool supervisor closed (did `peerpool serve` stop?)"))
    }

    private func handle(_ headerFrame: ZMQFrame, body: ZMQFrame?) {
        let header: WireHeader
        do {
            header = try headerFrame.withUnsafeBytes { bytes throws(WireError) in try WireHeader(decoding: bytes) }
        } catch {
            logger.debug("ignoring a frame from the supervisor", metadata: ["peerpool.error": "\(error)"])
            return
        }
        switch header.type {
        case .opened: answerOpened(header.id, body)
        case .error: answerError(header.id, body)
        case .statusReply: answerStatus(header.id, body)
        case .data:
            guard let body, body.count > 0 else { return violation(header, "DATA without a body") }
            streams[header.id]?.receiveData(body)
        case .finish: streams[header.id]?.receiveFinish()
        case .credit:
            guard let credit = try? CreditBody(frame: body) else { return violation(header, "CREDIT's body is not 4 bytes") }
            streams[header.id]?.receiveCredit(Int(credit.bytes))
        case .aborted:
            let error = body.map { WireError(jsonBody: $0.bytes, id: header.id) }
                ?? WireError(.protocolViolation, "ABORTED without a body", id: header.id)
            streams[header.id]?.terminate(error, reset: nil)
        default:
            violation(header, "not a type the supervisor sends to clients")
        }
    }

    private func violation(_ header: WireHeader, _ reason: String) {
        logger.debug("ignoring a message from the supervisor", metadata: [
            "peerpool.type": "\(header.type)", "peerpool.id": "\(header.id)", "peerpool.reason": "\(reason)",
        ])
    }

    private func answerOpened(_ id: UInt64, _ body: ZMQFrame?) {
        let opened: OpenedBody
        do { opened = try OpenedBody(frame: body) } catch {
            pending.removeValue(forKey: id)?.waiter.fail(WireError(.protocolViolation, error.message, id: id))
            return
        }
        let (streamID, sendWindow) = (opened.streamID, opened.sendWindow)
        guard let request = pending[id], case .open(let window, let continuation) = request.waiter else {
            // Cancelled, timed out or from before a reconnect: nobody will use the stream.
            logger.debug("resetting a stream opened for a request no one waits for", metadata: ["peerpool.stream": "\(streamID)"])
            _ = send(WireHeader(.reset, id: streamID), ResetBody.abandoned.encoded())
            return
        }
        pending[id] = nil
        guard streams[streamID] == nil else {
            continuation.resume(throwing: WireError(.protocolViolation, "OPENED names stream \(streamID), which is already open", id: id))
            return
        }
        let stream = SupervisedStreamState(id: streamID, connection: self, receiveWindow: window, sendWindow: Int(sendWindow))
        streams[streamID] = stream
        continuation.resume(returning: stream)
    }

    private func answerError(_ id: UInt64, _ body: ZMQFrame?) {
        let error = body.map { WireError(jsonBody: $0.bytes, id: id) }
            ?? WireError(.protocolViolation, "ERROR without a body", id: id)
        guard let request = pending.removeValue(forKey: id) else {
            if id == 0 {
                logger.debug("the supervisor rejected a frame", metadata: ["peerpool.error": "\(error)"])
            }
            return
        }
        request.waiter.fail(error)
    }

    private func answerStatus(_ id: UInt64, _ body: ZMQFrame?) {
        guard let request = pending[id], case .status(let continuation) = request.waiter else { return }
        pending[id] = nil
        do {
            continuation.resume(returning: try SupervisorStatus(frame: body))
        } catch {
            continuation.resume(throwing: WireError(.protocolViolation, error.message, id: id))
        }
    }

    // MARK: Sending

    /// Sends one message; nil on success, else the error the caller fails with. With unlimited
    /// high-water marks libzmq queues while the supervisor is away, so a failure here means the
    /// socket itself is gone.
    func send(_ header: WireHeader, _ body: [UInt8]?) -> WireError? {
        guard let socket else { return closedError ?? WireError(.clientClosed, "the SupervisorClient was closed") }
        var result = socket.send(header, more: body != nil)
        if result == .sent, let body { result = socket.send(body, more: false) }
        return sendError(result, header)
    }

    /// Sends a DATA frame with `count` bytes of `buffer` from its reader index.
    func sendData(_ id: UInt64, _ buffer: ByteBuffer, count: Int) -> WireError? {
        guard let socket else { return closedError ?? WireError(.clientClosed, "the SupervisorClient was closed") }
        let header = WireHeader(.data, id: id)
        var result = socket.send(header, more: true)
        if result == .sent {
            result = buffer.withUnsafeReadableBytes { bytes in
                socket.send(UnsafeRawBufferPointer(rebasing: bytes.prefix(count)), more: false)
            }
        }
        return sendError(result, header)
    }

    private func sendError(_ result: ZMQSocket.SendResult, _ header: WireHeader) -> WireError? {
        switch result {
        case .sent: return nil
        case .wouldBlock, .unroutable:
            return WireError(.supervisorLost, "cannot queue \(header.type) for the supervisor", id: header.id)
        case .failed(let errno):
            return WireError(.supervisorLost, "cannot send \(header.type) to the supervisor: \(ZMQError("zmq_send", errno: errno))", id: header.id)
        }
    }

    /// A stream is over (both FINISHed, RESET, ABORTED): its id no longer routes.
    func forget(_ stream: SupervisedStreamState) {
        if streams[stream.id] === stream { streams[stream.id] = nil }
    }
}
