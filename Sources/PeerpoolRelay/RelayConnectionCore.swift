import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket
import PeerpoolDiscovery
import PeerpoolIdentity
import Synchronization

/// Everything mutable behind one ``IrohRelayClient``: the state machine, the current channel,
/// the outgoing queue, timers and waiters. Confined to the client's event loop: the client
/// reaches it only through `NIOLoopBoundBox` (which traps off the loop), and every NIO callback it
/// registers runs on that loop because the channel is bootstrapped on it.
///
/// Connection attempts are numbered (`generation`): closing or reopening bumps the number, so a
/// late callback of an older attempt (a connect finishing after a timeout, a close we asked
/// for) is recognised and its channel closed, never mistaken for the current one.
final class RelayConnectionCore {
    let eventLoop: any EventLoop
    private let url: Result<RelayURL, RelayError>
    private let configuration: IrohRelayClient.Configuration
    private let logger: Logger
    private let dropped: DropCounter
    private var machine: RelayClientStateMachine
    private var receiver: (@Sendable (ID52, ByteBuffer, Int?) -> Void)?
    private var eventHandler: (@Sendable (IrohRelayClient.Event) -> Void)?

    private var generation = 0
    /// The current attempt's TCP connection is up: from then on its upgrade's outcome is the news.
    private var tcpConnected = false
    /// The current attempt's TCP connection while it upgrades (closed if the attempt is abandoned).
    private var attempt: (any Channel)?
    /// The WebSocket once upgraded, until closed.
    private var channel: (any Channel)?
    private var protocolVersion = "iroh-relay-v1"
    /// Why the current attempt ended, if we know better than "the connection closed".
    private var pendingFailure: RelayError?
    /// The last failure since the last successful handshake: what a waiter that times out throws.
    private var lastFailure: RelayError?

    private var queue = CircularBuffer<ByteBuffer>()
    private var queuedBytes = 0

    private var timer: Scheduled<Void>?
    private var timerDeadline: ContinuousClock.Instant?
    private var waiters: [Int: (promise: EventLoopPromise<Void>, timeout: Scheduled<Void>)] = [:]
    private var sslContext: NIOSSLContext?
    /// Endpoint ids seen as sources, so each datagram does not re-validate a curve point.
    private var sources: [[UInt8]: ID52] = [:]

    init(
        url: Result<RelayURL, RelayError>, secretKey: SecretKey, eventLoop: any EventLoop,
        configuration: IrohRelayClient.Configuration, logger: Logger, dropped: DropCounter
    ) {
        self.url = url
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.logger = logger
        self.dropped = dropped
        self.machine = RelayClientStateMachine(secretKey: secretKey, configuration: configuration.connection)
    }

    private var bound: NIOLoopBound<RelayConnectionCore> { NIOLoopBound(self, eventLoop: eventLoop) }

    // MARK: - The client's calls

    func setReceiver(_ receiver: @escaping @Sendable (ID52, ByteBuffer, Int?) -> Void) { self.receiver = receiver }
    func setEventHandler(_ handler: @escaping @Sendable (IrohRelayClient.Event) -> Void) { eventHandler = handler }

    func start() {
        if case .failure(let error) = url {
            lastFailure = error
            logger.info("relay client not started", metadata: ["relay.error": "\(error)"])
            return
        }
        perform(machine.start(now: .now), wasConnected: false)
    }

    /// Stops for good; the future completes once the current WebSocket (if any) is closed.
    func close() -> EventLoopFuture<Void> {
        let closing = (channel ?? attempt)?.closeFuture ?? eventLoop.makeSucceededVoidFuture()
        let wasStopped = machine.state == .stopped
        perform(machine.stop(), wasConnected: false)
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        failWaiters(RelayError(.relayClosed, "the relay client was closed"))
        if !wasStopped {
            logger.debug("relay client closed")
            eventHandler?(.closed)
        }
        return closing
    }

    func addWaiter(id: Int, promise: EventLoopPromise<Void>, timeout: Duration) {
        if case .failure(let error) = url { return promise.fail(error) }
        switch machine.state {
        case .connected: return promise.succeed()
        case .stopped: return promise.fail(RelayError(.relayClosed, "the relay client was closed"))
        default: break
        }
        let expiry = eventLoop.scheduleTask(in: TimeAmount(timeout)) { [bound] in
            bound.value.waiterTimedOut(id: id, after: timeout)
        }
        waiters[id] = (promise, expiry)
    }

    func cancelWaiter(id: Int) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        waiter.timeout.cancel()
        waiter.promise.fail(CancellationError())
    }

    func send(_ datagrams: ByteBuffer, segmentSize: Int?, ecn: UInt8, to peer: ID52) {
        let count = RelayDatagramFrames.datagramCount(byteCount: datagrams.readableBytes, segmentSize: segmentSize)
        guard machine.isConnected, let channel else { return dropped.add(count) }
        guard let frames = RelayDatagramFrames.frames(
            for: datagrams, segmentSize: segmentSize, ecn: ecn, destination: peer.publicKeyBytes, allocator: channel.allocator)
        else {
            logger.debug("datagrams not sendable through the relay", metadata: [
                "relay.bytes": "\(datagrams.readableBytes)", "relay.segment_size": "\(segmentSize.map(String.init) ?? "none")",
            ])
            return dropped.add(count)
        }
        var lost = 0
        for frame in frames {
            if !enqueue(frame.bytes, on: channel) { lost += frame.datagrams }
        }
        if lost > 0 { dropped.add(lost) }
        channel.flush()
    }

    // MARK: - The channel's events

    func connectFailed(generation: Int, _ error: any Error) {
        guard generation == self.generation else { return }
        let address = (try? url.get()).map(\.description) ?? "the relay"
        lost(RelayError(.relayUnreachable, "could not connect to \(address): \(error)", underlying: error))
    }

    func upgraded(generation: Int, channel: any Channel, protocolVersion: String?) {
        guard generation == self.generation else { return channel.close(promise: nil) }
        attempt = nil
        self.channel = channel
        self.protocolVersion = protocolVersion ?? "iroh-relay-v1"
        channel.closeFuture.whenComplete { [bound] _ in bound.value.channelClosed(generation: generation) }
        perform(machine.connectionOpened(now: .now), wasConnected: false)
    }

    /// The upgrade did not happen. Before the TCP connection is up this is the failed connect
    /// seen twice; `connectFailed` reports that one.
    func notUpgraded(generation: Int, channel: any Channel, _ error: RelayError) {
        channel.close(promise: nil)
        guard generation == self.generation, tcpConnected else { return }
        lost(error)
    }

    func connectSucceeded(generation: Int, channel: any Channel) {
        guard generation == self.generation else { return channel.close(promise: nil) }
        tcpConnected = true
        attempt = channel
    }

    func received(generation: Int, _ message: ByteBuffer) {
        guard generation == self.generation else { return }
        // Datagrams, the bulk of the traffic, skip the state machine's array copies; it only
        // has to know the connection is up, which it does.
        if machine.isConnected, let (source, segmentSize, data) = RelayDatagramFrames.received(message) {
            if let peer = endpoint(source) { receiver?(peer, data, segmentSize) }
            return
        }
        let wasConnected = machine.isConnected
        perform(machine.received(Array(message.readableBytesView), now: .now), wasConnected: wasConnected)
    }

    /// Something the state machine cannot see went wrong on the channel (a WebSocket protocol
    /// error, a text message); the channel is closing and `channelClosed` follows.
    func channelFailed(generation: Int, _ error: RelayError) {
        guard generation == self.generation else { return }
        pendingFailure = pendingFailure ?? error
    }

    func writabilityChanged(generation: Int) {
        guard generation == self.generation, let channel else { return }
        while channel.isWritable, let frame = queue.popFirst() {
            queuedBytes -= frame.readableBytes
            write(frame, to: channel)
        }
        channel.flush()
    }

    private func channelClosed(generation: Int) {
        guard generation == self.generation else { return }
        channel = nil
        lost(pendingFailure ?? RelayError(.relayConnectionLost, "the relay closed the connection"))
    }

    // MARK: - Performing the state machine's actions

    private func perform(_ actions: [RelayClientStateMachine.Action], wasConnected: Bool) {
        for action in actions {
            switch action {
            case .openConnection:
                openConnection()
            case .send(let bytes):
                if let channel { write(channel.allocator.buffer(bytes: bytes), to: channel, flush: true) }
            case .closeConnection(let reason):
                dropConnection(RelayError(reason, wasConnected: wasConnected))
            case .connected:
                lastFailure = nil
                logger.info("connected to the relay", metadata: metadata(["relay.protocol": "\(protocolVersion)"]))
                for (_, waiter) in waiters {
                    waiter.timeout.cancel()
                    waiter.promise.succeed()
                }
                waiters = [:]
                eventHandler?(.connected(protocolVersion: protocolVersion))
            case .deliver(let source, _, let segmentSize, let data):
                guard let peer = endpoint(source), let channel else { continue }
                receiver?(peer, channel.allocator.buffer(bytes: data), segmentSize.map(Int.init))
            case .peerGone(let key):
                guard let peer = endpoint(key) else { continue }
                logger.debug("endpoint not on the relay", metadata: metadata(["peer.id52": "\(peer)"]))
                eventHandler?(.endpointGone(peer))
            case .status(let code):
                let status = RelayStatus(code: code)
                logger.info("relay status", metadata: metadata(["relay.status": "\(status)"]))
                eventHandler?(.status(status))
            case .health(let problem):
                logger.info("relay health", metadata: metadata(["relay.health": "\(problem)"]))
                eventHandler?(.health(problem))
            case .restarting(let reconnectIn, let tryFor):
                eventHandler?(.restarting(reconnectIn: reconnectIn, tryFor: tryFor))
            }
        }
        rescheduleTimer()
    }

    private func openConnection() {
        generation += 1
        pendingFailure = nil
        tcpConnected = false
        guard case .success(let url) = url else { return }
        let generation = self.generation
        let sslContext: NIOSSLContext?
        do {
            if url.usesTLS { sslContext = try tlsContext() } else { sslContext = nil }
        } catch {
            return lost(RelayError(.relayUnreachable, "cannot set up TLS for \(url): \(error)", underlying: error))
        }
        logger.debug("connecting to the relay", metadata: metadata([:]))
        let bound = self.bound
        guard let bootstrap = ClientBootstrap(validatingGroup: eventLoop) else {
            return lost(RelayError(.relayUnreachable, "the relay client needs a NIOPosix event loop, not \(type(of: eventLoop))"))
        }
        bootstrap
            .connectTimeout(TimeAmount(configuration.connection.handshakeTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: configuration.writeBufferWaterMark)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: url.serverName))
                    }
                    let upgrade = try RelayUpgrade.configure(channel, url: url) { channel, protocolVersion in
                        try channel.pipeline.syncOperations.addHandler(RelayChannelHandler(core: bound, generation: generation))
                        bound.value.upgraded(generation: generation, channel: channel, protocolVersion: protocolVersion)
                    }
                    upgrade.whenComplete { result in
                        switch result {
                        case .success(.upgraded): break
                        case .success(.notUpgraded):
                            bound.value.notUpgraded(generation: generation, channel: channel, RelayError(
                                .relayUpgradeFailed, "\(url) did not switch GET /relay to a WebSocket: is it an iroh relay?"))
                        case .failure(let error) where error is NIOSSLError || error is BoringSSLError:
                            bound.value.notUpgraded(generation: generation, channel: channel, RelayError(
                                .relayTLSFailed, "the TLS handshake with \(url) failed: \(error)", underlying: error))
                        case .failure(let error):
                            bound.value.notUpgraded(generation: generation, channel: channel, RelayError(
                                .relayUpgradeFailed, "the WebSocket upgrade with \(url) failed: \(error)", underlying: error))
                        }
                    }
                }
            }
            .connect(host: url.host, port: url.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    bound.value.connectSucceeded(generation: generation, channel: channel)
                case .failure(let error):
                    bound.value.connectFailed(generation: generation, error)
                }
            }
    }

    private func tlsContext() throws -> NIOSSLContext {
        if let sslContext { return sslContext }
        let context = try NIOSSLContext(configuration: configuration.tls)
        sslContext = context
        return context
    }

    /// Closes the current attempt at our own request; the machine has already scheduled what
    /// comes next (a reconnect, or nothing once stopped).
    private func dropConnection(_ error: RelayError) {
        generation += 1
        attempt?.close(promise: nil)
        attempt = nil
        channel?.close(promise: nil)
        channel = nil
        discardQueue()
        guard error.code != .relayClosed else { return }
        report(error)
    }

    /// The current attempt ended without our asking: tell the machine, which schedules a reconnect.
    private func lost(_ error: RelayError) {
        generation += 1
        attempt?.close(promise: nil)
        attempt = nil
        channel = nil
        discardQueue()
        perform(machine.connectionClosed(now: .now), wasConnected: false)
        report(error)
    }

    private func report(_ error: RelayError) {
        lastFailure = error
        logger.info("relay connection failed; reconnecting", metadata: metadata([
            "relay.error.code": "\(error.code)", "relay.error": "\(error.message)",
        ]))
        if error.code == .relayRefused { failWaiters(error) }
        eventHandler?(.disconnected(error))
    }

    private func failWaiters(_ error: RelayError) {
        for (_, waiter) in waiters {
            waiter.timeout.cancel()
            waiter.promise.fail(error)
        }
        waiters = [:]
    }

    private func waiterTimedOut(id: Int, after timeout: Duration) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        let address = (try? url.get()).map(\.description) ?? "the relay"
        if let lastFailure {
            waiter.promise.fail(RelayError(lastFailure.code, "not connected to \(address) within \(timeout): \(lastFailure.message)",
                                           underlying: lastFailure.underlying))
        } else if machine.state == .idle {
            waiter.promise.fail(RelayError(.relayHandshakeTimeout, "not connected to \(address) within \(timeout): start() was not called"))
        } else {
            waiter.promise.fail(RelayError(.relayHandshakeTimeout, "the handshake with \(address) did not finish within \(timeout)"))
        }
    }

    // MARK: - Writing

    /// Writes `frame` now if the socket takes it, else queues it within the limit; false if dropped.
    private func enqueue(_ frame: ByteBuffer, on channel: any Channel) -> Bool {
        if queue.isEmpty && channel.isWritable {
            write(frame, to: channel)
            return true
        }
        guard queuedBytes + frame.readableBytes <= configuration.maximumQueuedBytes else { return false }
        queue.append(frame)
        queuedBytes += frame.readableBytes
        return true
    }

    /// One relay frame as one binary WebSocket message, masked as RFC 6455 requires of clients.
    private func write(_ frame: ByteBuffer, to channel: any Channel, flush: Bool = false) {
        let message = WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: frame)
        if flush {
            channel.writeAndFlush(message, promise: nil)
        } else {
            channel.write(message, promise: nil)
        }
    }

    private func discardQueue() {
        guard !queue.isEmpty else { return }
        dropped.add(queue.count)
        queue.removeAll()
        queuedBytes = 0
    }

    // MARK: - Helpers

    private func rescheduleTimer() {
        guard let deadline = machine.nextDeadline else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        guard deadline != timerDeadline else { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = eventLoop.scheduleTask(in: TimeAmount(max(.zero, deadline - .now))) { [bound] in
            bound.value.tick()
        }
    }

    private func tick() {
        timer = nil
        timerDeadline = nil
        let wasConnected = machine.isConnected
        perform(machine.tick(now: .now), wasConnected: wasConnected)
    }

    private func endpoint(_ key: [UInt8]) -> ID52? {
        if let known = sources[key] { return known }
        guard let peer = try? ID52(rawPublicKey: key) else {
            logger.debug("relay named an invalid endpoint id", metadata: ["relay.key_bytes": "\(key.count)"])
            return nil
        }
        if sources.count >= 4096 { sources.removeAll(keepingCapacity: true) }
        sources[key] = peer
        return peer
    }

    private func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
        extra.merging(["relay.url": "\((try? url.get())?.description ?? "invalid")"]) { a, _ in a }
    }
}

/// Datagrams dropped (not connected, queue full, unsendable), readable from any thread.
final class DropCounter: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { _ = count.add(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
