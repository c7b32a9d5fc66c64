import NIOCore
import PeerpoolWire

/// One stream's state on the client's reactor thread: the DATA queued for the reader, the
/// credit owed to the supervisor and held from it, the waiting reader and writer.
///
/// `SupervisedStream` hands it to the reactor in `@Sendable` closures; its mutable state lives
/// in a `ReactorBound` box, so every access is checked to be on the reactor thread.
///
/// Each direction ends once: `inbound` at the peer's FINISH or a failure, `outbound` at our
/// FINISH or a failure. A failure (ABORTED, RESET, supervisor lost, client closed) resumes the
/// waiting reader and writer with the error. The peer's FINISH wins over a later failure for
/// the reader: bytes that arrived before it are still read, then nil.
final class SupervisedStreamState: Sendable {
    enum End {
        case open
        case finished
        case failed(WireError)

        var isOpen: Bool {
            if case .open = self { return true }
            return false
        }
    }

    private struct Writer {
        var token: UInt64
        var buffer: ByteBuffer
        var sentAny: Bool
        var continuation: CheckedContinuation<Void, any Error>
    }

    let id: UInt64
    /// The `window` our OPEN announced: the most DATA the supervisor may send beyond our credit.
    let receiveWindow: Int
    private let connection: ClientConnection

    /// What only the reactor thread touches.
    private struct ReactorState {
        var queue: CircularBuffer<ByteBuffer> = CircularBuffer<ByteBuffer>(initialCapacity: 4)
        var queuedBytes: Int = 0
        /// Bytes the application consumed that we have not yet returned as CREDIT.
        var uncredited: Int = 0
        /// Bytes we may still send (OPENED's send window plus the supervisor's CREDITs, minus DATA).
        var sendCredit: Int
        var inbound: End = .open
        var outbound: End = .open
        var reader: (token: UInt64, continuation: CheckedContinuation<ByteBuffer?, any Error>)? = nil
        var writer: Writer? = nil
    }

    /// The reactor-thread state, checked on every access; the properties below forward to it.
    private let loop: ReactorBound<ReactorState>

    private var queue: CircularBuffer<ByteBuffer> {
        _read { yield loop.value.queue }
        _modify { yield &loop.value.queue }
    }
    private var queuedBytes: Int {
        _read { yield loop.value.queuedBytes }
        _modify { yield &loop.value.queuedBytes }
    }
    private var uncredited: Int {
        _read { yield loop.value.uncredited }
        _modify { yield &loop.value.uncredited }
    }
    private var sendCredit: Int {
        _read { yield loop.value.sendCredit }
        _modify { yield &loop.value.sendCredit }
    }
    private(set) var inbound: End {
        _read { yield loop.value.inbound }
        _modify { yield &loop.value.inbound }
    }
    private(set) var outbound: End {
        _read { yield loop.value.outbound }
        _modify { yield &loop.value.outbound }
    }
    private var reader: (token: UInt64, continuation: CheckedContinuation<ByteBuffer?, any Error>)? {
        _read { yield loop.value.reader }
        _modify { yield &loop.value.reader }
    }
    private var writer: Writer? {
        _read { yield loop.value.writer }
        _modify { yield &loop.value.writer }
    }

    init(id: UInt64, connection: ClientConnection, receiveWindow: Int, sendWindow: Int) {
        self.id = id
        self.connection = connection
        self.receiveWindow = receiveWindow
        self.loop = ReactorBound(ReactorState(sendCredit: sendWindow), reactor: connection.reactor)
    }

    /// What the supervisor may still send: the window less what is queued and not credited.
    var receiveWindowLeft: Int {
        return receiveWindow - queuedBytes - uncredited
    }

    /// Both directions ended: the supervisor has forgotten the stream's id.
    var isOver: Bool { !inbound.isOpen && !outbound.isOpen }

    /// CREDIT is returned in batches of at least this many consumed bytes (or when a read
    /// empties the queue), not after every read.
    private var creditThreshold: Int { max(1, receiveWindow / 4) }

    // MARK: Reading

    func read(token: UInt64, _ continuation: CheckedContinuation<ByteBuffer?, any Error>) {
        guard reader == nil else {
            return continuation.resume(throwing: WireError(.streamBusy, "another read() is waiting on stream \(id); one reader at a time", id: id))
        }
        if let buffer = queue.popFirst() {
            queuedBytes -= buffer.readableBytes
            consumed(buffer.readableBytes, drainedQueue: queue.isEmpty)
            return continuation.resume(returning: buffer)
        }
        switch inbound {
        case .finished: continuation.resume(returning: nil)
        case .failed(let error): continuation.resume(throwing: error)
        case .open: reader = (token, continuation)
        }
    }

    /// The reading task was cancelled: it gets `CancellationError`; nothing is lost, the next
    /// read gets the next bytes.
    func cancelRead(token: UInt64) {
        guard let reader, reader.token == token else { return }
        self.reader = nil
        reader.continuation.resume(throwing: CancellationError())
    }

    private func consumed(_ count: Int, drainedQueue: Bool) {
        uncredited += count
        guard inbound.isOpen, uncredited >= creditThreshold || drainedQueue else { return }
        // A failed send means the socket is gone; failAll follows and ends the stream.
        _ = connection.send(WireHeader(.credit, id: id), CreditBody(bytes: UInt32(uncredited)).encoded())
        uncredited = 0
    }

    func receiveData(_ frame: ZMQFrame) {
        // After the peer's FINISH, or once we ended the stream (a RESET may cross DATA in flight).
        guard inbound.isOpen else { return }
        let count = frame.count
        guard queuedBytes + uncredited + count <= receiveWindow else {
            return terminate(
                WireError(
                    .protocolViolation,
                    "the supervisor sent \(queuedBytes + uncredited + count) bytes on stream \(id) without CREDIT for them (window \(receiveWindow)); the stream was reset",
                    id: id),
                reset: 0)
        }
        let buffer = frame.withUnsafeBytes { ByteBuffer(bytes: $0) }
        if let reader {
            // The queue is empty whenever a reader waits.
            self.reader = nil
            consumed(count, drainedQueue: false)
            reader.continuation.resume(returning: buffer)
        } else {
            queue.append(buffer)
            queuedBytes += count
        }
    }

    func receiveFinish() {
        guard inbound.isOpen else { return }
        inbound = .finished
        if let reader {
            self.reader = nil
            reader.continuation.resume(returning: nil)
        }
        forgetIfOver()
    }

    // MARK: Writing

    func write(token: UInt64, _ buffer: ByteBuffer, _ continuation: CheckedContinuation<Void, any Error>) {
        switch outbound {
        case .failed(let error): return continuation.resume(throwing: error)
        case .finished:
            return continuation.resume(throwing: WireError(.streamClosed, "write() after finish() on stream \(id)", id: id))
        case .open: break
        }
        guard writer == nil else {
            return continuation.resume(throwing: WireError(.streamBusy, "another write() is waiting for credit on stream \(id); one writer at a time", id: id))
        }
        guard buffer.readableBytes > 0 else { return continuation.resume() }
        writer = Writer(token: token, buffer: buffer, sentAny: false, continuation: continuation)
        pump()
    }

    /// Sends as much of the waiting write as the credit allows, in DATA frames of at most
    /// `maxDataFrame` bytes; resumes the writer once all of it is sent.
    private func pump() {
        let maxFrame = connection.configuration.maxDataFrame
        while var current = writer, sendCredit > 0 {
            let count = min(current.buffer.readableBytes, sendCredit, maxFrame)
            if let error = connection.sendData(id, current.buffer, count: count) {
                return terminate(error, reset: nil)
            }
            sendCredit -= count
            current.buffer.moveReaderIndex(forwardBy: count)
            current.sentAny = true
            if current.buffer.readableBytes == 0 {
                writer = nil
                return current.continuation.resume()
            }
            writer = current
        }
    }

    func receiveCredit(_ count: Int) {
        guard outbound.isOpen else { return }
        sendCredit += count
        pump()
    }

    /// The writing task was cancelled while waiting for credit. If none of its bytes went out
    /// the stream stays usable; otherwise the peer would see a cut-off message followed by
    /// whatever comes next, so the stream is reset (code 0).
    func cancelWrite(token: UInt64) {
        guard let writer, writer.token == token else { return }
        self.writer = nil
        writer.continuation.resume(throwing: CancellationError())
        if writer.sentAny {
            terminate(WireError(.streamClosed, "a write() on stream \(id) was cancelled half-sent; the stream was reset", id: id), reset: 0)
        }
    }

    func finish(_ continuation: CheckedContinuation<Void, any Error>) {
        switch outbound {
        case .failed(let error): return continuation.resume(throwing: error)
        case .finished:
            return continuation.resume(throwing: WireError(.streamClosed, "finish() twice on stream \(id)", id: id))
        case .open: break
        }
        guard writer == nil else {
            return continuation.resume(throwing: WireError(.streamBusy, "finish() while a write() waits for credit on stream \(id); one writer at a time", id: id))
        }
        if let error = connection.send(WireHeader(.finish, id: id), nil) {
            terminate(error, reset: nil)
            return continuation.resume(throwing: error)
        }
        outbound = .finished
        continuation.resume()
        forgetIfOver()
    }

    // MARK: Ending

    /// `reset(code:)`: RESET to the supervisor unless the stream is already over; a waiting
    /// reader and writer fail with `stream_closed`.
    func reset(code: UInt64) {
        guard !isOver else { return }
        terminate(WireError(.streamClosed, "stream \(id) was reset by this client with code \(code)", id: id), reset: code)
    }

    /// The application dropped its `SupervisedStream`: like closing a socket, a stream that is
    /// not over is reset with code 0 so the supervisor and the peer let go of it.
    func release() {
        if !isOver {
            terminate(WireError(.streamClosed, "stream \(id) was released", id: id), reset: 0)
        }
        connection.forget(self)
    }

    /// Ends every direction still open with `error` and resumes whoever waits. `reset`: also
    /// send RESET with that code (when the supervisor does not already know the stream is over).
    func terminate(_ error: WireError, reset code: UInt64?) {
        if let code, !isOver {
            _ = connection.send(WireHeader(.reset, id: id), ResetBody(code: code).encoded())
        }
        if inbound.isOpen {
            inbound = .failed(error)
            queue.removeAll()
            queuedBytes = 0
            if let reader {
                self.reader = nil
                reader.continuation.resume(throwing: error)
            }
        }
        if outbound.isOpen { outbound = .failed(error) }
        if let writer {
            self.writer = nil
            writer.continuation.resume(throwing: error)
        }
        connection.forget(self)
    }

    private func forgetIfOver() {
        if isOver { connection.forget(self) }
    }
}
