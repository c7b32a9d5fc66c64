import CNGTCP2
import NIOCore

// Streams: what ngtcp2 reports about them (callbacks) and what the application asks of them.

extension QUICConnectionCore {
    // MARK: From ngtcp2 (inside callbacks: record, resume, never call back into ngtcp2)

    func receivedStreamData(_ id: Int64, _ bytes: UnsafeRawBufferPointer, fin: Bool) {
        guard let stream = streams[id], !stream.readStopped, !stream.handleReleased else {
            // Nobody will read these bytes: give the credit straight back so the peer is not
            // stalled on the connection window by a stream we no longer care about.
            if let conn, bytes.count > 0 {
                ngtcp2_conn_extend_max_offset(conn, UInt64(bytes.count))
                _ = ngtcp2_conn_extend_max_stream_offset(conn, id, UInt64(bytes.count))
            }
            return
        }
        if bytes.count > 0 {
            stream.received.writeBytes(bytes)
            unreadBytes += bytes.count
            withheldConnectionCredit += bytes.count
            returnConnectionCredit()
        }
        if fin { stream.receivedFin = true }
        wakeReader(stream)
    }

    /// Gives connection-level credit (MAX_DATA) back to ngtcp2 for bytes that arrived, as long
    /// as the bytes buffered unread on the whole connection stay within
    /// `maxConnectionReceiveWindow`; beyond that, only as the application reads.
    ///
    /// Stream-level credit (MAX_STREAM_DATA) is still given back only as the application reads,
    /// so each stream's buffer stays bounded by its window. Giving connection credit back only on
    /// read, too, let one unread stream hold the connection hostage: its unread bytes (up to its
    /// auto-tuned window, 16 MiB) stay counted against the connection window (24 MiB at most, 1
    /// MiB at first), and ngtcp2 0.12 sends MAX_DATA only once the credit returned since the last
    /// one exceeds half the window. With more than half the window unread on one stream, reading
    /// every other stream could never return enough: the sender, out of connection credit, sent
    /// nothing more on any stream until the connection died of idle timeout
    /// (TwoStreamFlowControlTests). Bytes buffered unread per connection are now bounded by
    /// `maxConnectionReceiveWindow` plus the connection window in flight.
    func returnConnectionCredit() {
        let keep = max(0, unreadBytes - configuration.maxConnectionReceiveWindow)
        guard withheldConnectionCredit > keep else { return }
        if let conn { ngtcp2_conn_extend_max_offset(conn, UInt64(withheldConnectionCredit - keep)) }
        withheldConnectionCredit = keep
    }

    /// Drops the bytes of `stream` that nobody will read, giving their credit back.
    func discardReceived(_ stream: StreamState) {
        let pending = stream.received.readableBytes
        guard pending > 0 else { return }
        stream.received.clear()
        if let conn { _ = ngtcp2_conn_extend_max_stream_offset(conn, stream.id, UInt64(pending)) }
        unreadBytes -= pending
        returnConnectionCredit()
    }

    func acknowledged(_ id: Int64, _ count: Int) {
        guard let stream = streams[id] else { return }
        stream.send.acknowledge(count)
        if stream.send.bufferedBytes <= configuration.streamSendBufferLimit { wakeWriters(stream, throwing: nil) }
    }

    func peerOpenedStream(_ id: Int64) {
        guard ngtcp2_is_bidi_stream(id) != 0 else { return }
        streams[id] = StreamState(id: id, allocator: endpoint.allocator)
        if let waiter = acceptWaiters.first {
            acceptWaiters.removeFirst()
            waiter.continuation.resume(returning: QUICStream(core: self, id: id))
        } else {
            acceptQueue.append(id)
        }
    }

    func transportClosedStream(_ id: Int64, applicationCode: UInt64?) {
        guard let stream = streams[id] else { return }
        stream.transportClosed = true
        dequeueSend(stream)
        if !stream.finSent || stream.send.bufferedBytes > 0 {
            wakeWriters(stream, throwing: QUICError(.streamClosed, "stream \(id) closed before its data was acknowledged"))
        }
        if !stream.receivedFin && stream.resetByPeer == nil {
            stream.resetByPeer = applicationCode ?? 0
        }
        wakeReader(stream)
        // A peer-opened stream frees a slot: let the peer open another.
        if let conn, ngtcp2_conn_is_local_stream(conn, id) == 0 {
            ngtcp2_conn_extend_max_streams_bidi(conn, 1)
        }
        forgetIfDone(stream)
    }

    func peerResetStream(_ id: Int64, code: UInt64) {
        guard let stream = streams[id] else { return }
        stream.resetByPeer = code
        wakeReader(stream)
    }

    /// ngtcp2 0.12 reports a peer's STOP_SENDING through no callback: it resets our side
    /// itself, and `writev_stream` answers STREAM_SHUT_WR from then on. We notice it there.
    func peerStoppedStream(_ stream: StreamState) {
        guard !stream.locallyReset, !stream.stoppedByPeer else { return }
        stream.stoppedByPeer = true
        stream.send.discard()
        dequeueSend(stream)
        wakeWriters(stream, throwing: stoppedError(stream.id))
    }

    func stoppedError(_ id: Int64) -> QUICError {
        QUICError(.streamStopped, "the peer stopped reading stream \(id) (STOP_SENDING); its bytes were discarded")
    }

    /// The peer allows more streams: wake everyone waiting to open one; each retries.
    func streamCreditArrived() {
        let waiting = openWaiters
        openWaiters = []
        for waiter in waiting { waiter.continuation.resume() }
    }

    func queueForSend(_ id: Int64) {
        guard let stream = streams[id] else { return }
        enqueueSend(stream)
    }

    // MARK: Send queue (round robin over streams with something to send)

    func enqueueSend(_ stream: StreamState) {
        guard !stream.queuedForSend, stream.hasPendingSend else { return }
        stream.queuedForSend = true
        sendQueue.append(stream.id)
    }

    func dequeueSend(_ stream: StreamState) {
        guard stream.queuedForSend else { return }
        stream.queuedForSend = false
        if let index = sendQueue.firstIndex(of: stream.id) { sendQueue.remove(at: index) }
    }

    /// The next stream whose data should go into a packet; rotates the queue for fairness.
    func nextStreamToSend(connectionCredit: Bool) -> StreamState? {
        var tries = sendQueue.count
        while tries > 0, let id = sendQueue.first {
            tries -= 1
            guard let stream = streams[id], stream.hasPendingSend else {
                sendQueue.removeFirst()
                streams[id]?.queuedForSend = false
                continue
            }
            // Without connection credit only a bare FIN can go out.
            if !connectionCredit && stream.send.unsentBytes > 0 { return nil }
            sendQueue.removeFirst()
            sendQueue.append(id)
            return stream
        }
        return nil
    }

    // MARK: Waking application tasks

    func wakeReader(_ stream: StreamState) {
        guard let reader = stream.reader else { return }
        if stream.received.readableBytes > 0 {
            stream.reader = nil
            reader.continuation.resume(returning: takeReceived(stream))
        } else if stream.receivedFin {
            stream.reader = nil
            reader.continuation.resume(returning: nil)
        } else if let code = stream.resetByPeer {
            stream.reader = nil
            reader.continuation.resume(throwing: QUICError(.streamReset, "the peer reset stream \(stream.id) with code \(code)"))
        } else if let reason = closeReason {
            stream.reader = nil
            reader.continuation.resume(throwing: reason.error)
        }
    }

    func wakeWriters(_ stream: StreamState, throwing error: QUICError?) {
        let writers = stream.writers
        stream.writers = []
        for writer in writers {
            if let error { writer.continuation.resume(throwing: error) } else { writer.continuation.resume() }
        }
    }

    /// Hands the application everything received so far and extends stream credit by as much
    /// (and connection credit if any was withheld: `returnConnectionCredit`), so the peer may
    /// send more.
    private func takeReceived(_ stream: StreamState) -> ByteBuffer {
        let out = stream.received
        stream.received = endpoint.allocator.buffer(capacity: 0)
        guard out.readableBytes > 0 else { return out }
        unreadBytes -= out.readableBytes
        returnConnectionCredit()
        if let conn {
            _ = ngtcp2_conn_extend_max_stream_offset(conn, stream.id, UInt64(out.readableBytes))
            scheduleWrite()
        }
        return out
    }

    /// Fails every waiter of the connection (it closed).
    func failAllWaiters(_ error: QUICError) {
        for waiter in openWaiters { waiter.continuation.resume(throwing: error) }
        openWaiters = []
        for waiter in acceptWaiters { waiter.continuation.resume(throwing: error) }
        acceptWaiters = []
        acceptQueue.removeAll()
        for stream in streams.values {
            wakeWriters(stream, throwing: error)
            if let reader = stream.reader {
                stream.reader = nil
                // Data that already arrived is still delivered; only an empty wait fails.
                if stream.received.readableBytes > 0 {
                    reader.continuation.resume(returning: takeReceived(stream))
                } else if stream.receivedFin {
                    reader.continuation.resume(returning: nil)
                } else {
                    reader.continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Drops a stream's state once ngtcp2 is done with it and the application dropped its handle
    /// (until then the handle keeps answering: a finished stream keeps reading as ended).
    func forgetIfDone(_ stream: StreamState) {
        if stream.transportClosed && stream.handleReleased { streams[stream.id] = nil }
    }

    // MARK: Application calls

    func openStream() async throws -> QUICStream {
        while true {
            if let reason = closeReason { throw reason.error }
            guard let conn else { throw QUICError(.connectionClosed, "QUIC connection is not open") }
            var id: Int64 = -1
            let rv = ngtcp2_conn_open_bidi_stream(conn, &id, nil)
            if rv == 0 {
                streams[id] = StreamState(id: id, allocator: endpoint.allocator)
                return QUICStream(core: self, id: id)
            }
            guard rv == NGTCP2_ERR_STREAM_ID_BLOCKED else {
                throw QUICError(.internal, "ngtcp2_conn_open_bidi_stream: \(ngtcp2Message(rv))")
            }
            // At the peer's concurrent-stream limit: wait for a slot, never fail.
            let waiterID = allocateWaiterID()
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                    // State is re-checked here: the runtime may have hopped through the event
                    // loop since the check above, and credit may have arrived meanwhile.
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else if closeReason != nil || self.conn.map({ ngtcp2_conn_get_streams_bidi_left($0) > 0 }) ?? true {
                        continuation.resume()
                    } else {
                        openWaiters.append((waiterID, continuation))
                    }
                }
            } onCancel: {
                self.eventLoop.execute { self.assumeIsolated { $0.cancelOpenWaiter(waiterID) } }
            }
        }
    }

    private func cancelOpenWaiter(_ id: UInt64) {
        guard let index = openWaiters.firstIndex(where: { $0.id == id }) else { return }
        openWaiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    func acceptStream() async throws -> QUICStream {
        if let id = acceptQueue.popFirst() { return QUICStream(core: self, id: id) }
        if let reason = closeReason { throw reason.error }
        let waiterID = allocateWaiterID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<QUICStream, Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else if let id = acceptQueue.popFirst() {
                    continuation.resume(returning: QUICStream(core: self, id: id))
                } else if let reason = closeReason {
                    continuation.resume(throwing: reason.error)
                } else {
                    acceptWaiters.append((waiterID, continuation))
                }
            }
        } onCancel: {
            self.eventLoop.execute { self.assumeIsolated { $0.cancelAcceptWaiter(waiterID) } }
        }
    }

    private func cancelAcceptWaiter(_ id: UInt64) {
        guard let index = acceptWaiters.firstIndex(where: { $0.id == id }) else { return }
        acceptWaiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    private func stream(_ id: Int64) throws -> StreamState {
        guard let stream = streams[id] else {
            if let reason = closeReason { throw reason.error }
            throw QUICError(.streamClosed, "stream \(id) is closed")
        }
        return stream
    }

    /// Next bytes of the stream; nil at its end.
    func read(_ id: Int64) async throws -> ByteBuffer? {
        let stream = try stream(id)
        if stream.received.readableBytes > 0 { return takeReceived(stream) }
        if stream.receivedFin { return nil }
        if let code = stream.resetByPeer {
            throw QUICError(.streamReset, "the peer reset stream \(id) with code \(code)")
        }
        if let reason = closeReason { throw reason.error }
        guard stream.reader == nil else { throw QUICError(.internal, "stream \(id) already has a reader") }
        let waiterID = allocateWaiterID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer?, Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else if stream.reader != nil {
                    continuation.resume(throwing: QUICError(.internal, "stream \(id) already has a reader"))
                } else {
                    // Data may have arrived since the check above: wakeReader hands it over now.
                    stream.reader = (waiterID, continuation)
                    wakeReader(stream)
                }
            }
        } onCancel: {
            self.eventLoop.execute { self.assumeIsolated { $0.cancelReader(id, waiterID) } }
        }
    }

    private func cancelReader(_ id: Int64, _ waiterID: UInt64) {
        guard let stream = streams[id], let reader = stream.reader, reader.id == waiterID else { return }
        stream.reader = nil
        reader.continuation.resume(throwing: CancellationError())
    }

    /// Queues bytes; returns once the stream holds no more than its send limit.
    func write(_ id: Int64, _ buffer: ByteBuffer) async throws {
        let stream = try stream(id)
        if let reason = closeReason { throw reason.error }
        if stream.stoppedByPeer { throw stoppedError(id) }
        guard !stream.finQueued, !stream.locallyReset else {
            throw QUICError(.streamClosed, "stream \(id) was already finished or reset")
        }
        stream.send.append(buffer)
        enqueueSend(stream)
        scheduleWrite()
        while stream.send.bufferedBytes > configuration.streamSendBufferLimit {
            let waiterID = allocateWaiterID()
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else if stream.send.bufferedBytes <= configuration.streamSendBufferLimit
                        || closeReason != nil || stream.stoppedByPeer || stream.locallyReset || stream.transportClosed
                    {
                        continuation.resume()
                    } else {
                        stream.writers.append((waiterID, continuation))
                    }
                }
            } onCancel: {
                self.eventLoop.execute { self.assumeIsolated { $0.cancelWriter(id, waiterID) } }
            }
            if let reason = closeReason { throw reason.error }
            if stream.stoppedByPeer { throw stoppedError(id) }
            if stream.locallyReset || stream.transportClosed {
                throw QUICError(.streamClosed, "stream \(id) was reset or closed while writing")
            }
        }
    }

    private func cancelWriter(_ id: Int64, _ waiterID: UInt64) {
        guard let stream = streams[id], let index = stream.writers.firstIndex(where: { $0.id == waiterID }) else { return }
        stream.writers.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    /// Sends FIN after the queued bytes.
    func finish(_ id: Int64) throws {
        let stream = try stream(id)
        if let reason = closeReason { throw reason.error }
        guard !stream.locallyReset else { throw QUICError(.streamClosed, "stream \(id) was reset") }
        guard !stream.finQueued else { return }
        stream.finQueued = true
        enqueueSend(stream)
        scheduleWrite()
    }

    /// Abandons sending: RESET_STREAM with `code`; unacknowledged bytes are dropped.
    func reset(_ id: Int64, code: UInt64) {
        guard let stream = streams[id], let conn, !stream.locallyReset else { return }
        stream.locallyReset = true
        stream.send.discard()
        dequeueSend(stream)
        _ = ngtcp2_conn_shutdown_stream_write(conn, id, QUICErrorCodeRange.clamped(code))
        wakeWriters(stream, throwing: QUICError(.streamClosed, "stream \(id) was reset"))
        scheduleWrite()
    }

    /// Abandons reading: STOP_SENDING with `code`; arriving bytes are dropped.
    func stopSending(_ id: Int64, code: UInt64) {
        guard let stream = streams[id], let conn, !stream.readStopped else { return }
        stream.readStopped = true
        discardReceived(stream)
        _ = ngtcp2_conn_shutdown_stream_read(conn, id, QUICErrorCodeRange.clamped(code))
        scheduleWrite()
    }

    /// The application dropped its handle. Each direction it left open is shut with code 0:
    /// unfinished sending with RESET_STREAM, unfinished reading with STOP_SENDING. A direction
    /// it finished is left alone, so bytes written before `finish()` still arrive.
    func release(_ id: Int64) {
        guard let stream = streams[id] else { return }
        stream.handleReleased = true
        // Nobody can read what is buffered any more: its connection credit must not stay lost.
        discardReceived(stream)
        if let conn, !stream.transportClosed {
            let finishedWriting = stream.finSent || stream.finQueued || stream.locallyReset
            let finishedReading = stream.receivedFin || stream.resetByPeer != nil || stream.readStopped
            if !finishedWriting {
                stream.send.discard()
                dequeueSend(stream)
                stream.locallyReset = true
                _ = ngtcp2_conn_shutdown_stream_write(conn, id, 0)
            }
            if !finishedReading {
                stream.readStopped = true
                _ = ngtcp2_conn_shutdown_stream_read(conn, id, 0)
            }
            if !finishedWriting || !finishedReading { scheduleWrite() }
        }
        forgetIfDone(stream)
    }

    /// Closes the connection with an application error code (0: normal close).
    func close(code: UInt64, reason: String) {
        terminate(.locallyClosed(applicationCode: code), closeWith: .application(code, reason))
    }

    /// Starts a TLS key update (tests use it to show that one mid-transfer loses nothing).
    func initiateKeyUpdate() throws {
        guard let conn else { throw closeReason?.error ?? QUICError(.connectionClosed, "QUIC connection is closed") }
        guard handshakeConfirmed else { throw QUICError(.internal, "key update before the handshake is confirmed") }
        let rv = ngtcp2_conn_initiate_key_update(conn, monotonicNow())
        guard rv == 0 else { throw QUICError(.internal, "key update refused: \(ngtcp2Message(rv))") }
        scheduleWrite()
    }

    func closed() async -> QUICCloseReason {
        if let closeReason { return closeReason }
        return await withCheckedContinuation { continuation in
            if let closeReason { continuation.resume(returning: closeReason) } else { closedWaiters.append(continuation) }
        }
    }
}
