import Foundation
import PeerpoolIdentity
import PeerpoolWire

/// Client messages. Every malformed or unexpected message gets an answer (ERROR for requests,
/// ABORTED for stream ids) and touches nothing else; none can block the loop.
extension SupervisorCore {
    /// Reads at most a batch per wake-up, so a flooding client cannot starve the workers' socket.
    func readFrontend() {
        for _ in 0..<512 {
            let received: (frames: [ZMQFrame], truncated: Bool)?
            do { received = try frontend.receive(maxParts: 3) } catch {
                logger.error("frontend receive failed: \(error)")
                return
            }
            guard let (frames, truncated) = received else { return }
            guard frames.count >= 2 else { continue }  // a ROUTER always prefixes the routing id
            let key = ClientKey(routingID: frames[0].bytes)
            handleClientMessage(key, header: frames[1], body: frames.count > 2 ? frames[2] : nil, extraFrames: truncated || frames.count > 3)
        }
    }

    private func handleClientMessage(_ key: ClientKey, header headerFrame: ZMQFrame, body: ZMQFrame?, extraFrames: Bool) {
        // A client dropped for not reading hears why with its next message; if its queue is
        // still full, with a later one (the notice is forgotten only once it was queued).
        if !overrunClients.isEmpty, clients[key] == nil, let index = overrunClients.firstIndex(of: key) {
            let notice = WireError(.clientOverrun, "this client did not read its replies until \(Self.frontendHighWaterMark) were queued; the supervisor dropped it: every request it had waiting got no answer and every stream it had open was reset. Read replies as they come; this message is new and is served")
            if trySendToClient(key, WireHeader(.error, id: 0), body: notice.jsonBody) == .sent {
                overrunClients.remove(at: index)
            }
        }
        let (client, live) = client(for: key, header: headerFrame)
        // A message that outlived its connection is answered (the answer goes nowhere) and its
        // client forgotten at once, with whatever the message started.
        defer { if !live { dropClient(key) } }
        let header: WireHeader
        do throws(WireError) {
            header = try headerFrame.withUnsafeBytes { bytes throws(WireError) in try WireHeader(decoding: bytes) }
        } catch {
            // A header that names a stream type carries a stream id, not a request id: answer
            // as for any bad stream message (ABORTED, ending the stream if it is the client's).
            let type = headerFrame.count >= 2 ? headerFrame.withUnsafeBytes { WireMessageType(rawValue: $0[1]) } : nil
            if let type, error.id != 0, Self.streamTypes.contains(type) {
                return abortOrRefuse(key, stream: error.id, error)
            }
            return sendError(key, id: type.map { Self.streamTypes.contains($0) } == true ? 0 : error.id, error)
        }
        if extraFrames {
            return reject(key, header, WireError(.malformedFrame, "a message has at most two frames (header, body); this one has more"))
        }
        if header.id == 0, header.type == .open || header.type == .cancel || header.type == .status {
            return sendError(key, id: 0, WireError(.malformedFrame, "request id 0 is reserved; use any other"))
        }
        switch header.type {
        case .open: handleOpen(client, header, body)
        case .cancel: handleCancel(client, header, body)
        case .status: handleStatus(client, header, body)
        case .data: handleData(client, header, headerFrame, body)
        case .finish, .reset, .credit: handleStreamControl(client, header, headerFrame, body)
        default:
            sendError(key, id: header.id, WireError(.unknownType, "\(header.type) is not a message a client may send", id: header.id))
        }
    }

    static let streamTypes: Set<WireMessageType> = [.data, .finish, .reset, .credit]

    /// An ERROR for requests, an ABORTED for stream messages (ending the stream when it is the
    /// client's: ABORTED always means the stream is gone).
    private func reject(_ key: ClientKey, _ header: WireHeader, _ error: WireError) {
        if Self.streamTypes.contains(header.type) {
            abortOrRefuse(key, stream: header.id, error)
        } else {
            sendError(key, id: header.id, error)
        }
    }

    /// A bad message about `stream`: ends it (RESET to the worker, ABORTED to the client) when
    /// it is this client's, else just answers ABORTED.
    private func abortOrRefuse(_ key: ClientKey, stream: UInt64, _ error: WireError) {
        if routes[stream]?.client == key {
            abortStream(stream, error)
        } else {
            sendAborted(key, stream: stream, error)
        }
    }

    // MARK: Requests

    private func handleOpen(_ client: Client, _ header: WireHeader, _ body: ZMQFrame?) {
        let key = client.key
        guard let body else {
            return sendError(key, id: header.id, WireError(.malformedFrame, "OPEN needs a JSON body frame"))
        }
        guard body.count <= Self.maxOpenBody else {
            return sendError(key, id: header.id, WireError(.frameTooLarge, "an OPEN body is at most \(Self.maxOpenBody) bytes, this one has \(body.count)"))
        }
        guard client.requests[header.id] == nil else {
            return sendError(key, id: header.id, WireError(.duplicateRequest, "request id \(header.id) is already waiting for an answer"))
        }
        guard !draining else {
            return sendError(key, id: header.id, WireError(.shuttingDown, "the supervisor is shutting down and takes no new requests"))
        }
        guard client.requests.count < configuration.maxRequestsPerClient else {
            return sendError(key, id: header.id, WireError(.tooManyRequests, "this client already has \(client.requests.count) requests waiting (max_requests_per_client)"))
        }
        guard client.streams.count < configuration.maxStreamsPerClient else {
            return sendError(key, id: header.id, WireError(.tooManyStreams, "this client already has \(client.streams.count) open streams (max_streams_per_client)"))
        }
        let request: OpenRequest
        do throws(WireError) {
            request = try body.withUnsafeBytes { bytes throws(WireError) in
                try OpenRequest(jsonBody: bytes, maxTimeout: configuration.maxRequestTimeout, maxWindow: configuration.maxWindow)
            }
        } catch {
            return sendError(key, id: header.id, error)
        }
        if let local = request.local, !identitySet.contains(local) {
            return sendError(key, id: header.id, WireError(.unknownIdentity, "\(local) is not one of this supervisor's identities"))
        }
        let perPeer = configuration.maxStreamsPerClientPerPeer
        let held = streamsAndOpens(of: client, to: request.remote, limit: perPeer)
        guard held < perPeer else {
            return sendError(key, id: header.id, WireError(.tooManyStreams, "this client already has \(held) streams open or opening to \(request.remote) (max_streams_per_client_per_peer \(perPeer), a fair share of the connection every client shares); end some first"))
        }
        let shard = shards[shardMap.worker(for: request.remote)]
        if case .backoff(let until) = shard.state {
            return sendError(key, id: header.id, WireError(.workerUnavailable, shard.unavailableMessage(until: until)))
        }
        if shard.state == .starting && shard.queued.count >= configuration.maxPendingPerShard {
            return sendError(key, id: header.id, WireError(.tooManyRequests, "shard \(shard.index)'s worker is starting and \(shard.queued.count) requests already wait for it (max_pending_per_shard)"))
        }
        let id = allocateID()
        var open = Open(
            client: key, requestID: header.id, remote: request.remote, shard: shard.index,
            deadline: .now + (request.timeout ?? configuration.defaultRequestTimeout), body: body, sentTo: nil
        )
        client.requests[header.id] = id
        shard.opens.insert(id)
        if shard.state == .running, forwardToWorker(shard, header: ZMQFrame(WireHeader(.open, id: id).bytes), body: body) {
            open.body = nil
            open.sentTo = shard.generation
        } else {
            shard.queued.append(id)
        }
        opens[id] = open
    }

    private func handleCancel(_ client: Client, _ header: WireHeader, _ body: ZMQFrame?) {
        guard body == nil else {
            return sendError(client.key, id: header.id, WireError(.malformedFrame, "CANCEL has no body"))
        }
        guard let id = client.requests.removeValue(forKey: header.id), let open = opens.removeValue(forKey: id) else { return }
        let shard = shards[open.shard]
        shard.opens.remove(id)
        if open.sentTo != nil { sendToWorker(shard, WireHeader(.cancel, id: id)) }
        sendError(client.key, id: header.id, WireError(.cancelled, "cancelled by the client", id: header.id))
    }

    private func handleStatus(_ client: Client, _ header: WireHeader, _ body: ZMQFrame?) {
        guard body == nil else {
            return sendError(client.key, id: header.id, WireError(.malformedFrame, "STATUS has no body"))
        }
        guard client.requests[header.id] == nil else {
            return sendError(client.key, id: header.id, WireError(.duplicateRequest, "request id \(header.id) is already waiting for an answer (an OPEN); use another id"))
        }
        sendToClient(client.key, WireHeader(.statusReply, id: header.id), body: status().encoded())
    }

    // MARK: Streams

    private func handleData(_ client: Client, _ header: WireHeader, _ headerFrame: ZMQFrame, _ body: ZMQFrame?) {
        guard let body, body.count > 0 else {
            return abortOrRefuse(client.key, stream: header.id, WireError(.malformedFrame, "DATA needs a non-empty body"))
        }
        guard var route = routes[header.id], route.client == client.key else {
            return sendAborted(client.key, stream: header.id, WireError(.unknownStream, "stream \(header.id) is not open for this client"))
        }
        guard body.count <= Self.maxDataBody else {
            return abortStream(header.id, WireError(.frameTooLarge, "a DATA body is at most \(Self.maxDataBody) bytes, this one has \(body.count)"))
        }
        guard body.count <= route.clientCredit, !route.clientFinished else {
            let why = route.clientFinished ? "DATA after FINISH" : "DATA of \(body.count) bytes with \(route.clientCredit) bytes of credit"
            return abortStream(header.id, WireError(.flowControlViolation, why))
        }
        route.clientCredit -= body.count
        routes[header.id] = route
        forwardToWorker(shards[route.shard], header: headerFrame, body: body)
    }

    private func handleStreamControl(_ client: Client, _ header: WireHeader, _ headerFrame: ZMQFrame, _ body: ZMQFrame?) {
        guard var route = routes[header.id], route.client == client.key else {
            if header.type == .credit { return }  // may cross the stream's end
            return sendAborted(client.key, stream: header.id, WireError(.unknownStream, "stream \(header.id) is not open for this client"))
        }
        // Decoded before anything reaches a worker: ResetBody refuses a code over 2^62-1, which
        // ngtcp2 would abort the worker (and every stream of its shard) on.
        do throws(WireError) {
            switch header.type {
            case .reset: _ = try ResetBody(frame: body)
            case .credit: _ = try CreditBody(frame: body)
            default:
                guard body == nil else { throw WireError(.malformedFrame, "\(header.type) takes no body") }
            }
        } catch {
            let reset = header.type == .reset ? "; the stream was reset with code 0" : ""
            return abortStream(header.id, WireError(error.code, error.message + reset))
        }
        let shard = shards[route.shard]
        forwardToWorker(shard, header: headerFrame, body: body)
        switch header.type {
        case .finish:
            route.clientFinished = true
            if route.workerFinished { forgetStream(header.id) } else { routes[header.id] = route }
        case .reset:
            forgetStream(header.id)
        default:
            break
        }
    }

    /// Ends a stream on both sides: RESET to the worker, ABORTED to the client.
    func abortStream(_ id: UInt64, _ error: WireError) {
        guard let route = routes[id] else { return }
        forgetStream(id)
        sendToWorker(shards[route.shard], WireHeader(.reset, id: id), body: ResetBody.abandoned.encoded())
        sendAborted(route.client, stream: id, error)
    }

    func forgetStream(_ id: UInt64) {
        guard let route = routes.removeValue(forKey: id) else { return }
        shards[route.shard].streams.remove(id)
        clients[route.client]?.streams.remove(id)
    }
}
