import NIOCore
import PeerpoolPool
import PeerpoolWire

/// OPEN and CANCEL: one task per OPEN asks the pool for the stream, then stays on as the stream's
/// peer → client reader; a reactor timer answers `timeout` (and cancels the task) at the
/// request's deadline. Exactly one answer per OPEN: whichever of OPENED, ERROR from the pool,
/// `timeout`, `cancelled` or `shutting_down` comes first removes the pending entry, and the
/// others find it gone.
extension WorkerCore {
    /// OPEN. *Reactor thread.*
    func open(_ id: UInt64, _ body: ZMQFrame?) {
        guard !shuttingDown else {
            return send(.error, id: id, body: WireError(.shuttingDown, "worker \(settings.index) is shutting down and takes no new streams").jsonBody)
        }
        guard opens[id] == nil, streams[id] == nil else {
            return send(.error, id: id, body: WireError(.duplicateRequest, "stream id \(id) is already in use on worker \(settings.index)").jsonBody)
        }
        guard let body else {
            return send(.error, id: id, body: WireError(.malformedFrame, "OPEN needs a JSON body").jsonBody)
        }
        let open: DecodedOpen
        do { open = try decodeOpen(body) } catch {
            return send(.error, id: id, body: error.jsonBody)
        }
        let pipe = WorkerStream(id: id, window: open.request.window ?? settings.receiveWindow)
        // The task may finish before this handler returns; what it reports is queued behind it.
        let task = Task(executorPreference: executor) { [self] in await openThenRead(pipe, open) }
        // The deadline is a reactor timer, not a sleeping task racing getStream: no task group,
        // no dispatch timer per open.
        let timeout = open.request.timeout ?? .milliseconds(settings.defaultRequestTimeoutMilliseconds)
        let timer = reactor.schedule(after: timeout) { [unowned self] in
            guard let pending = opens[id], pending.stream === pipe else { return }
            opens[id] = nil
            pending.task.cancel()
            pipe.close()
            send(.error, id: id, body: WireError(.timeout, "no stream to \(open.request.remote) within \(OpenRequest.milliseconds(timeout)) ms").jsonBody)
            checkIdle()
        }
        opens[id] = PendingOpen(stream: pipe, task: task, timer: timer)
    }

    /// An OPEN body read, and the peer it names.
    struct DecodedOpen: Sendable {
        var request: OpenRequest
        var peer: PeerAddress
    }

    /// Reads an OPEN body. (Validated ID52s are remembered by PeerpoolIdentity, so a peer seen
    /// before costs no curve check.) *Reactor thread.*
    private func decodeOpen(_ body: ZMQFrame) throws(WireError) -> DecodedOpen {
        // The same range checks as the supervisor's (its configured limits), again here: the
        // window sizes this worker's buffers and the timeout arms a timer.
        let maxTimeout = Duration.milliseconds(settings.maxRequestTimeoutMilliseconds)
        let maxWindow = settings.maxWindow
        let request = try body.withUnsafeBytes { bytes throws(WireError) in
            try OpenRequest(jsonBody: bytes, maxTimeout: maxTimeout, maxWindow: maxWindow)
        }
        return DecodedOpen(request: request, peer: request.peerAddress())
    }

    /// CANCEL: withdraws a pending open (ERROR `cancelled`) or resets an open stream (ABORTED
    /// `cancelled`, so the supervisor's route goes too). *Reactor thread.*
    func cancel(_ id: UInt64) {
        if let pending = opens.removeValue(forKey: id) {
            reactor.cancel(pending.timer)
            pending.task.cancel()
            pending.stream.close()
            send(.error, id: id, body: WireError(.cancelled, "the open was cancelled").jsonBody)
            checkIdle()
        } else if streams[id] != nil {
            abort(id, WireError(.cancelled, "the stream was cancelled after it opened; reset it"))
        }
    }

    /// The open task: getStream (cancelled by CANCEL, the deadline or shutdown), then the reader
    /// loop. *Swift side.*
    private func openThenRead(_ pipe: WorkerStream, _ open: DecodedOpen) async {
        let peer: PeerStream
        do {
            peer = try await pool.getStream(open.request.header, to: open.peer, from: open.request.local)
        } catch {
            // Cancelled: whoever cancelled has answered already.
            guard !(error is CancellationError) else { return }
            let wire = Self.wireError(error, fallback: PoolError.Code.connectFailed.name)
            enqueue { [self] in openFailed(pipe, wire) }
            return
        }
        enqueue { [self] in opened(pipe, peer) }
        await copyToClient(pipe, peer)
    }

    /// *Reactor thread.*
    private func openFailed(_ pipe: WorkerStream, _ error: WireError) {
        guard let pending = opens[pipe.id], pending.stream === pipe else { return }  // cancelled meanwhile
        opens[pipe.id] = nil
        reactor.cancel(pending.timer)
        logger.debug("open failed", metadata: ["stream.id": "\(pipe.id)", "error": "\(error)"])
        send(.error, id: pipe.id, body: error.jsonBody)
        checkIdle()
    }

    /// *Reactor thread.*
    private func opened(_ pipe: WorkerStream, _ peer: PeerStream) {
        guard let pending = opens[pipe.id], pending.stream === pipe else {
            // Cancelled (or abandoned at shutdown) while the pool was answering.
            pipe.close()
            let code = Self.abandonCode
            Task(executorPreference: executor) {
                await peer.reset(code: code)
                await peer.stopSending(code: code)
            }
            return
        }
        opens[pipe.id] = nil
        reactor.cancel(pending.timer)
        let entry = Entry(pipe: pipe, peer: peer, reader: pending.task)
        entry.writer = Task(executorPreference: executor) { [self] in await copyToPeer(pipe, peer) }
        streams[pipe.id] = entry
        send(.opened, id: pipe.id, body: OpenedBody(streamID: pipe.id, sendWindow: UInt32(clamping: settings.receiveWindow)).encoded())
    }
}
