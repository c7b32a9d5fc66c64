import NIOCore
import PeerpoolPool
import PeerpoolWire

/// Open streams: the two copy loops (Swift side) and the stream messages from the supervisor
/// (reactor thread).
///
/// Peer → client: the reader waits for credit, reads whatever QUIC holds (one read hands out
/// everything that arrived), posts as much as the credit allows to the stream's outbox and keeps
/// the rest until more credit comes; the reactor sends the outbox as DATA frames of up to
/// 256 KiB (`sendData`), coalescing what piled up while it was busy. Client → peer: DATA is copied once into a
/// ByteBuffer and queued; the writer takes the whole queue per wake-up, writes it in order and
/// returns CREDIT as writes complete.
extension WorkerCore {
    // MARK: Swift side

    /// The reader loop; ends at the peer's FIN, on an error, or when the stream is closed.
    func copyToClient(_ pipe: WorkerStream, _ peer: PeerStream) async {
        var pending: ByteBuffer?
        while true {
            if pending == nil {
                // Read only while the client can take something: a slow client slows the peer.
                guard await pipe.waitForCredit() else { return }
                let chunk: ByteBuffer?
                do { chunk = try await peer.read() } catch {
                    return reportFailure(pipe, error)
                }
                guard let chunk else {
                    enqueue { [self] in peerFinished(pipe) }
                    return
                }
                if chunk.readableBytes == 0 { continue }
                pending = chunk
            }
            guard let granted = await pipe.takeCredit(upTo: pending!.readableBytes) else { return }
            let part = pending!.readSlice(length: granted)!
            if pending!.readableBytes == 0 { pending = nil }
            if pipe.post(part) { enqueue { [self] in flushToClient(pipe) } }
        }
    }

    /// The writer loop; ends after finishing the QUIC stream, on an error, or when the stream is
    /// closed.
    func copyToPeer(_ pipe: WorkerStream, _ peer: PeerStream) async {
        // Credit goes back in batches of a quarter window (or at the end of what was queued), so
        // the client never stalls on credit and small writes don't cost a message each.
        let batch = max(1, settings.receiveWindow / 4)
        while let writes = await pipe.nextWrites() {
            var uncredited = 0
            for (index, buffer) in writes.buffers.enumerated() {
                do { try await peer.write(buffer) } catch {
                    return reportFailure(pipe, error)
                }
                uncredited += buffer.readableBytes
                if uncredited >= batch || index == writes.buffers.count - 1 {
                    let bytes = uncredited
                    uncredited = 0
                    enqueue { [self] in credited(pipe, bytes) }
                }
            }
            if writes.finish {
                do { try await peer.finish() } catch {
                    return reportFailure(pipe, error)
                }
                enqueue { [self] in writeFinished(pipe) }
                return
            }
        }
    }

    private func reportFailure(_ pipe: WorkerStream, _ error: any Error) {
        // Our own teardown cancels the loops; the stream is already forgotten then.
        guard !(error is CancellationError) else { return }
        let wire = Self.wireError(error, fallback: WireError.Code.streamReset.rawValue)
        enqueue { [self] in
            guard streams[pipe.id]?.pipe === pipe else { return }
            abort(pipe.id, wire)
        }
    }

    // MARK: Reactor thread: from the copy loops

    /// Sends what the reader posted. Queued before the reader's FINISH or failure, so it goes out
    /// first.
    private func flushToClient(_ pipe: WorkerStream) {
        guard streams[pipe.id]?.pipe === pipe else { return }
        sendData(id: pipe.id, pipe.takeOutbox())
    }

    private func peerFinished(_ pipe: WorkerStream) {
        guard let entry = streams[pipe.id], entry.pipe === pipe else { return }
        send(.finish, id: pipe.id)
        entry.readDone = true
        forgetIfDone(entry)
    }

    private func credited(_ pipe: WorkerStream, _ bytes: Int) {
        guard let entry = streams[pipe.id], entry.pipe === pipe else { return }
        entry.unacknowledged -= bytes
        send(.credit, id: pipe.id, body: CreditBody(bytes: UInt32(clamping: bytes)).encoded())
    }

    private func writeFinished(_ pipe: WorkerStream) {
        guard let entry = streams[pipe.id], entry.pipe === pipe else { return }
        entry.writeDone = true
        forgetIfDone(entry)
    }

    private func forgetIfDone(_ entry: Entry) {
        guard entry.readDone, entry.writeDone else { return }
        // Both directions ended cleanly: dropping the handles leaves the QUIC stream alone.
        streams[entry.pipe.id] = nil
        entry.pipe.close()
        checkIdle()
    }

    // MARK: Reactor thread: from the supervisor

    func clientData(_ id: UInt64, _ body: ZMQFrame?) {
        guard let entry = streams[id] else {
            return send(.aborted, id: id, body: WireError(.unknownStream, "DATA for stream \(id), which worker \(settings.index) does not have").jsonBody)
        }
        guard let body, body.count > 0 else {
            return abort(id, WireError(.malformedFrame, "DATA needs a body of at least one byte"))
        }
        guard !entry.clientFinished else {
            return abort(id, WireError(.malformedFrame, "DATA after FINISH on stream \(id)"))
        }
        let window = settings.receiveWindow
        guard entry.unacknowledged + body.count <= window else {
            return abort(id, WireError(
                .flowControlViolation,
                "DATA of \(body.count) bytes with \(window - entry.unacknowledged) bytes of credit left (window \(window))"))
        }
        entry.unacknowledged += body.count
        entry.pipe.enqueue(byteBuffer(body))
    }

    func clientCredit(_ id: UInt64, _ body: ZMQFrame?) {
        // CREDIT for a stream that ended may cross its end in flight: ignored.
        guard let entry = streams[id] else { return }
        let bytes: Int
        do { bytes = Int(try CreditBody(frame: body).bytes) } catch { return abort(id, error) }
        // Credit returns bytes the client consumed, so it never lifts the credit above the
        // window; more is a broken client (and would let it grow what this worker buffers).
        guard entry.pipe.addCredit(bytes) else {
            return abort(id, WireError(.flowControlViolation, "CREDIT of \(bytes) bytes would raise the stream's credit above its window of \(entry.pipe.window) bytes: credit only what was consumed"))
        }
    }

    func clientFinish(_ id: UInt64) {
        guard let entry = streams[id] else {
            return send(.aborted, id: id, body: WireError(.unknownStream, "FINISH for stream \(id), which worker \(settings.index) does not have").jsonBody)
        }
        guard !entry.clientFinished else { return }
        entry.clientFinished = true
        entry.pipe.enqueueFinish()
    }

    /// RESET(code): reset and stop the QUIC stream with the client's code and forget it; no answer.
    func clientReset(_ id: UInt64, _ body: ZMQFrame?) {
        if opens[id] != nil { return cancel(id) }
        guard let entry = streams.removeValue(forKey: id) else {
            return send(.aborted, id: id, body: WireError(.unknownStream, "RESET for stream \(id), which worker \(settings.index) does not have").jsonBody)
        }
        // The supervisor refuses bad bodies already; decoded again here because ngtcp2 aborts
        // the process on a code that is not a 62-bit varint.
        let reset: ResetBody
        do { reset = try ResetBody(frame: body) } catch {
            // A body of the wrong size resets with code 0, as it always did.
            guard body?.count == ResetBody.size else {
                tearDown(entry, code: 0)
                return checkIdle()
            }
            send(.aborted, id: id, body: WireError(error.code, "\(error.message); reset with \(Self.abandonCode) instead").jsonBody)
            tearDown(entry, code: Self.abandonCode)
            return checkIdle()
        }
        tearDown(entry, code: reset.code)
        checkIdle()
    }

    /// Ends a stream from our side: ABORTED to the supervisor, RESET_STREAM and STOP_SENDING to
    /// the peer, and forget it.
    func abort(_ id: UInt64, _ error: WireError) {
        guard let entry = streams.removeValue(forKey: id) else { return }
        logger.debug("stream aborted", metadata: ["stream.id": "\(id)", "error": "\(error)"])
        send(.aborted, id: id, body: error.jsonBody)
        tearDown(entry, code: Self.abandonCode)
        checkIdle()
    }

    private func tearDown(_ entry: Entry, code: UInt64) {
        entry.pipe.close()
        entry.reader.cancel()
        entry.writer?.cancel()
        let peer = entry.peer
        Task(executorPreference: executor) {
            await peer.reset(code: code)
            await peer.stopSending(code: code)
        }
    }
}
