import CNGTCP2
import NIOCore

// Packets in, packets out, timers, and the end of a connection.

extension QUICConnectionCore {
    // MARK: Receiving

    /// One UDP datagram for this connection. The endpoint writes our answer after its read batch.
    func receive(_ datagram: UnsafeRawBufferPointer, from remote: SocketAddress) {
        guard let conn, closeReason == nil, let base = datagram.baseAddress else { return }
        var info = ngtcp2_pkt_info()
        let rv: CInt
        if remote == remoteAddress {
            rv = pp_ngtcp2_conn_read_pkt(
                conn, &path.pointee.path, &info, base.assumingMemoryBound(to: UInt8.self), datagram.count, monotonicNow())
        } else {
            // A connection stays on its path: nothing from the socket reaches a relayed peer's
            // connection, nothing from a relay a UDP peer's.
            guard relayRoute == nil, !RelayStandIns.isStandIn(remote) else { return }
            // The peer's address changed (NAT rebinding); ngtcp2 validates the new path. Replies
            // still go to the address we know: peerpool does not follow migrations.
            let other = UnsafeMutablePointer<ngtcp2_path_storage>.allocate(capacity: 1)
            defer { other.deallocate() }
            let local = path.pointee.path.local
            remote.withSockAddr { addr, len in
                ngtcp2_path_storage_init(other, local.addr, local.addrlen, addr, ngtcp2_socklen(len), nil)
            }
            rv = pp_ngtcp2_conn_read_pkt(
                conn, &other.pointee.path, &info, base.assumingMemoryBound(to: UInt8.self), datagram.count, monotonicNow())
        }
        if rv != 0 {
            handleLibraryError(rv)
            return
        }
        afterCallbacks()
        endpoint.assumeIsolated { $0.needsWrite(self) }
    }

    /// Acts on what callbacks recorded during the last ngtcp2 call.
    func afterCallbacks() {
        if let failure = pendingFailure {
            pendingFailure = nil
            terminate(failure, closeWith: .tlsAlert)
            return
        }
        if handshakeCompletedInCallback {
            handshakeCompletedInCallback = false
            handshakeCompleted()
        }
    }

    private func handshakeCompleted() {
        guard phase == .handshaking else { return }
        guard negotiatedALPNMatches() else {
            terminate(.handshakeFailed("the peer does not speak \(String(decoding: tls.alpn, as: UTF8.self))"),
                      closeWith: .transport(UInt64(NGTCP2_CRYPTO_ERROR) | 120))
            return
        }
        guard let localIdentity, let peerID52 else {
            terminate(.handshakeFailed("the peer's identity was not verified"), closeWith: .transport(UInt64(NGTCP2_CRYPTO_ERROR) | 42))
            return
        }
        phase = .established
        if isServer { handshakeConfirmed = true }
        if let conn, let keepAlive = configuration.keepAliveInterval {
            ngtcp2_conn_set_keep_alive_timeout(conn, keepAlive.nanoseconds)
        }
        let handle = QUICConnection(
            core: self, localID52: localIdentity.id52, remoteID52: peerID52, remoteAddress: remoteAddress, path: quicPath)
        logger[metadataKey: "peer.id52"] = "\(peerID52)"
        logger.debug("QUIC handshake complete", metadata: ["quic.role": "\(isServer ? "server" : "client")"])
        if isServer {
            endpoint.assumeIsolated { $0.deliverIncoming(handle, core: self) }
        } else if let waiter = handshakeWaiter {
            handshakeWaiter = nil
            waiter.resume(returning: handle)
        }
        streamCreditArrived()
    }

    /// What a failed ngtcp2 call means for the connection.
    func handleLibraryError(_ rv: CInt) {
        switch rv {
        case NGTCP2_ERR_DISCARD_PKT:
            return
        case NGTCP2_ERR_DRAINING, NGTCP2_ERR_CLOSING:
            terminate(peerCloseReason(), closeWith: nil)
        case NGTCP2_ERR_DROP_CONN:
            terminate(.error("ngtcp2 dropped the connection"), closeWith: nil)
        case NGTCP2_ERR_IDLE_CLOSE:
            terminate(.idleTimeout, closeWith: nil)
        case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
            terminate(.handshakeTimeout, closeWith: nil)
        case NGTCP2_ERR_CRYPTO:
            if let failure = pendingFailure {
                pendingFailure = nil
                terminate(failure, closeWith: .tlsAlert)
            } else {
                let alert = conn.map { ngtcp2_conn_get_tls_alert($0) } ?? 0
                terminate(.handshakeFailed(alertName(alert)), closeWith: .tlsAlert)
            }
        default:
            terminate(.error("QUIC protocol error: \(ngtcp2Message(rv))"), closeWith: .library(rv))
        }
    }

    /// The peer's CONNECTION_CLOSE, in our words.
    private func peerCloseReason() -> QUICCloseReason {
        guard let conn else { return .error("connection closed") }
        var error = ngtcp2_connection_close_error()
        ngtcp2_conn_get_connection_close_error(conn, &error)
        let reason = error.reason.map { String(decoding: UnsafeBufferPointer(start: $0, count: error.reasonlen), as: UTF8.self) } ?? ""
        switch error.type {
        case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION:
            return .peerClosed(applicationCode: error.error_code, reason: reason)
        case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT_IDLE_CLOSE:
            return .idleTimeout
        default:
            let crypto = UInt64(NGTCP2_CRYPTO_ERROR)
            if error.error_code & ~0xff == crypto {
                return .handshakeFailed("the peer refused the handshake with \(alertName(UInt8(error.error_code & 0xff)))")
            }
            return .peerTransportError(code: error.error_code, reason: reason)
        }
    }

    // MARK: Timers

    /// Makes sure a timer fires no later than ngtcp2's next expiry. A timer already armed for an
    /// earlier moment is kept: firing early is harmless (ngtcp2 handles only what is due, and
    /// the timer is re-armed then), while cancelling and rescheduling on every write pass cost
    /// ~12% of the CPU of a stream open.
    func rearmTimer() {
        guard let conn, closeReason == nil else { return }
        let expiry = ngtcp2_conn_get_expiry(conn)
        if timer != nil, timerDeadline <= expiry { return }
        timer?.cancel()
        timerDeadline = expiry
        guard expiry != .max else {
            timer = nil
            return
        }
        timer = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(expiry)) { [self] in
            self.assumeIsolated { $0.timerFired() }
        }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = .max
        guard let conn, closeReason == nil else { return }
        let rv = ngtcp2_conn_handle_expiry(conn, monotonicNow())
        if rv != 0 {
            handleLibraryError(rv)
            return
        }
        afterCallbacks()
        writePackets()
        endpoint.channel.flush()
    }

    // MARK: Sending

    /// Asks for a write pass on the next turn of the loop; many requests in one turn make one pass.
    func scheduleWrite() {
        guard !writeScheduled, closeReason == nil else { return }
        writeScheduled = true
        eventLoop.execute { [self] in
            self.assumeIsolated {
                $0.writeScheduled = false
                $0.writePackets()
                $0.endpoint.channel.flush()
            }
        }
    }

    /// Builds packets until ngtcp2 has nothing more to send (or congestion control, pacing or the
    /// socket says stop), handing them to the channel in GSO batches of equal-sized packets.
    /// The caller flushes the channel.
    func writePackets() {
        guard let conn, closeReason == nil else { return }
        // A relay never pushes back (it drops, like UDP); only the socket can be full.
        guard relayRoute != nil || endpoint.assumeIsolated({ $0.channelWritable }) else {
            endpoint.assumeIsolated { $0.waitForWritable(self) }
            return
        }
        let maxPayload = ngtcp2_conn_get_max_tx_udp_payload_size(conn)
        let pathMaxPayload = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn)
        let quantum = ngtcp2_conn_get_send_quantum(conn)
        let maxPackets = max(1, min(configuration.maxPacketsPerBatch, 65_000 / maxPayload, quantum / maxPayload))
        // A relay carries batches whatever the kernel supports.
        let offload = relayRoute != nil || endpoint.assumeIsolated { $0.segmentationOffload }
        var batch = endpoint.allocator.buffer(capacity: maxPackets * maxPayload)
        var packets = 0
        var segmentSize = 0
        let now = monotonicNow()
        var info = ngtcp2_pkt_info()

        while true {
            var streamID: Int64 = -1
            var vecCount = 0
            var vecBytes = 0
            var fin = false
            var stream: StreamState?
            if let next = nextStreamToSend(connectionCredit: ngtcp2_conn_get_max_data_left(conn) > 0) {
                stream = next
                streamID = next.id
                (vecCount, vecBytes) = next.send.fillUnsent(vecs, capacity: Self.vecCapacity)
                fin = next.finQueued && !next.finSent && vecBytes == next.send.unsentBytes
            }
            var flags = UInt32(NGTCP2_WRITE_STREAM_FLAG_MORE)
            if fin { flags |= UInt32(NGTCP2_WRITE_STREAM_FLAG_FIN) }
            var accepted: ngtcp2_ssize = -1
            var written: ngtcp2_ssize = 0
            batch.writeWithUnsafeMutableBytes(minimumWritableBytes: maxPayload) { out in
                written = pp_ngtcp2_conn_writev_stream(
                    conn, nil, &info, out.baseAddress!.assumingMemoryBound(to: UInt8.self), maxPayload,
                    &accepted, flags, streamID, vecCount > 0 ? vecs : nil, vecCount, now)
                return written > 0 ? Int(written) : 0
            }
            if let stream, accepted >= 0 {
                stream.send.markSent(Int(accepted))
                if fin && Int(accepted) == vecBytes { stream.finSent = true }
                if !stream.hasPendingSend { dequeueSend(stream) }
            }
            if written < 0 {
                switch CInt(written) {
                case NGTCP2_ERR_WRITE_MORE:
                    continue
                case NGTCP2_ERR_STREAM_DATA_BLOCKED, NGTCP2_ERR_STREAM_NOT_FOUND:
                    if let stream { dequeueSend(stream) }
                    continue
                case NGTCP2_ERR_STREAM_SHUT_WR:
                    if let stream { peerStoppedStream(stream) }
                    continue
                default:
                    send(&batch, segmentSize: segmentSize, packets: packets, offload: offload)
                    handleLibraryError(CInt(written))
                    return
                }
            }
            let size = Int(written)
            if size == 0 {
                send(&batch, segmentSize: segmentSize, packets: packets, offload: offload)
                updatePacing(conn, now)
                break
            }
            if packets == 0 {
                segmentSize = size
            } else if size > segmentSize || (segmentSize > pathMaxPayload && size != segmentSize) {
                // This packet cannot join the batch: send the batch, then it alone.
                var last = batch.readSlice(length: batch.readableBytes - size)!
                swap(&last, &batch)
                send(&batch, segmentSize: segmentSize, packets: packets, offload: offload)
                send(&last, segmentSize: size, packets: 1, offload: offload)
                updatePacing(conn, now)
                scheduleWrite()
                break
            }
            packets += 1
            if packets == maxPackets || size < segmentSize {
                send(&batch, segmentSize: segmentSize, packets: packets, offload: offload)
                updatePacing(conn, now)
                // More may be ready; let reads and other connections run first.
                scheduleWrite()
                break
            }
        }
        probeStoppedStreams(now: now)
        rearmTimer()
    }

    /// Writers waiting for acknowledgements of bytes already handed to ngtcp2 would wait forever
    /// if the peer sent STOP_SENDING meanwhile (ngtcp2 drops those bytes and says nothing).
    /// Asking ngtcp2 to write nothing on such a stream reveals it: STREAM_SHUT_WR.
    private func probeStoppedStreams(now: UInt64) {
        guard let conn else { return }
        for stream in streams.values where !stream.writers.isEmpty && stream.send.unsentBytes == 0 {
            var probe = endpoint.allocator.buffer(capacity: 0)
            var written: ngtcp2_ssize = 0
            probe.writeWithUnsafeMutableBytes(minimumWritableBytes: 1500) { out in
                written = pp_ngtcp2_conn_writev_stream(
                    conn, nil, nil, out.baseAddress!.assumingMemoryBound(to: UInt8.self), 1500, nil, 0, stream.id, nil, 0, now)
                return written > 0 ? Int(written) : 0
            }
            if written == ngtcp2_ssize(NGTCP2_ERR_STREAM_SHUT_WR) {
                peerStoppedStream(stream)
            } else if probe.readableBytes > 0 {
                transmit(probe, segmentSize: nil)
            }
        }
    }

    /// Tells ngtcp2's pacer what was sent. Not during the handshake: ngtcp2 0.12 would pace the
    /// client's last handshake flight against its 333 ms initial RTT guess and hold every new
    /// connection's first request for about 20 ms (measured: 21 ms to 0.3 ms without it).
    private func updatePacing(_ conn: OpaquePointer, _ now: UInt64) {
        if ngtcp2_conn_get_handshake_completed(conn) != 0 { ngtcp2_conn_update_pkt_tx_time(conn, now) }
    }

    /// Hands one batch of packets to the path: one GSO write when the kernel (or the relay) can
    /// split it.
    private func send(_ batch: inout ByteBuffer, segmentSize: Int, packets: Int, offload: Bool) {
        guard packets > 0, batch.readableBytes > 0 else { return }
        if packets == 1 || offload {
            transmit(batch, segmentSize: packets > 1 ? segmentSize : nil)
        } else {
            while batch.readableBytes > 0 {
                transmit(batch.readSlice(length: min(segmentSize, batch.readableBytes))!, segmentSize: nil)
            }
        }
        batch.clear()
    }

    /// Where every packet of this connection leaves: to the relay for a relayed peer, else to
    /// the socket (unflushed: the caller flushes). A stand-in address never reaches the socket.
    func transmit(_ packets: ByteBuffer, segmentSize: Int?) {
        if let relayRoute {
            relayRoute.path.send(packets, segmentSize: segmentSize, ecn: 0, to: relayRoute.peer)
            return
        }
        assert(!RelayStandIns.isStandIn(wireAddress), "a UDP connection to a relay stand-in address")
        let metadata = segmentSize.map {
            AddressedEnvelope<ByteBuffer>.Metadata(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: $0)
        }
        endpoint.channel.write(AddressedEnvelope(remoteAddress: wireAddress, data: packets, metadata: metadata), promise: nil)
    }

    // MARK: Ending

    enum CloseFrame {
        case tlsAlert
        case transport(UInt64)
        case application(UInt64, String)
        case library(CInt)
    }

    /// Ends the connection once: sends a CONNECTION_CLOSE if asked, fails every waiter with
    /// `reason`, leaves the endpoint's routing table and frees the C state.
    func terminate(_ reason: QUICCloseReason, closeWith frame: CloseFrame?) {
        guard closeReason == nil else { return }
        closeReason = reason
        phase = .closed
        if let frame, let conn, ngtcp2_conn_is_in_draining_period(conn) == 0, ngtcp2_conn_is_in_closing_period(conn) == 0 {
            var error = ngtcp2_connection_close_error()
            ngtcp2_connection_close_error_default(&error)
            var reasonBytes: [UInt8] = []
            switch frame {
            case .tlsAlert:
                ngtcp2_connection_close_error_set_transport_error_tls_alert(&error, ngtcp2_conn_get_tls_alert(conn), nil, 0)
            case .transport(let code):
                ngtcp2_connection_close_error_set_transport_error(&error, QUICErrorCodeRange.clamped(code), nil, 0)
            case .application(let code, let text):
                reasonBytes = Array(text.utf8.prefix(256))
                ngtcp2_connection_close_error_set_application_error(&error, QUICErrorCodeRange.clamped(code), nil, 0)
            case .library(let rv):
                ngtcp2_connection_close_error_set_transport_error_liberr(&error, rv, nil, 0)
            }
            var packet = endpoint.allocator.buffer(capacity: 1500)
            reasonBytes.withUnsafeMutableBufferPointer { text in
                if !text.isEmpty {
                    error.reason = text.baseAddress
                    error.reasonlen = text.count
                }
                packet.writeWithUnsafeMutableBytes(minimumWritableBytes: 1500) { out in
                    let n = pp_ngtcp2_conn_write_connection_close(
                        conn, nil, nil, out.baseAddress!.assumingMemoryBound(to: UInt8.self), 1500, &error, monotonicNow())
                    return n > 0 ? Int(n) : 0
                }
            }
            if packet.readableBytes > 0 {
                transmit(packet, segmentSize: nil)
                endpoint.channel.flush()
            }
        }
        timer?.cancel()
        timer = nil
        logger.debug("QUIC connection closed", metadata: ["quic.reason": "\(reason)"])
        failAllWaiters(reason.error)
        if let waiter = handshakeWaiter {
            handshakeWaiter = nil
            waiter.resume(throwing: reason.error)
        }
        let closed = closedWaiters
        closedWaiters = []
        for waiter in closed { waiter.resume(returning: reason) }
        endpoint.assumeIsolated { $0.remove(self) }
        freeNativeState()
    }

    func addConnectionID(_ id: ConnectionID) {
        connectionIDs.insert(id)
        endpoint.assumeIsolated { $0.route(id, to: self) }
    }

    func removeConnectionID(_ id: ConnectionID) {
        connectionIDs.remove(id)
        endpoint.assumeIsolated { $0.unroute(id) }
    }
}
