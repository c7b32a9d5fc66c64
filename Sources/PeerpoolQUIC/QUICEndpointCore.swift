import CNGTCP2
import Logging
import NIOCore
import PeerpoolIdentity

/// The routing table of one UDP socket: which connection each connection ID belongs to, and
/// new server connections for Initial packets nobody knows yet.
///
/// Runs on the socket channel's event loop, like every connection on it, so all of them share
/// one serial executor and call each other with `assumeIsolated`. Datagrams from the home relay
/// (`attachRelay`) arrive on the relay's thread, wait in a `RelayInbox` and are handled on this
/// loop too, from the peer's stand-in address (`RelayStandIns`), exactly like UDP datagrams.
actor QUICEndpointCore {
    nonisolated let eventLoop: any EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { eventLoop.executor.asUnownedSerialExecutor() }

    nonisolated let channel: any Channel
    nonisolated let allocator: ByteBufferAllocator
    nonisolated let localAddress: SocketAddress
    /// Which addresses the socket can send to, and the IPv4-mapped form on a dual-stack socket.
    nonisolated let addressing: UDPAddressing
    let tls: TLSContext
    let configuration: QUICConfiguration
    let logger: Logger
    let segmentationOffload: Bool
    /// Whether peers may connect to us. False for endpoints that only dial out.
    let acceptsConnections: Bool

    private var routes: [ConnectionID: QUICConnectionCore] = [:]
    private var connections: Set<ObjectIdentifier> = []
    private var closed = false
    private let incoming: AsyncStream<QUICConnection>.Continuation
    /// Why the socket closed without `close(code:)`: the last error the channel reported.
    private var socketError: (any Error)?
    /// The last IPv4-mapped source seen on a dual-stack socket and its plain IPv4 form: one
    /// peer's packets arrive in runs, so this saves building the same address per datagram.
    private var lastMapped: (wire: SocketAddress, logical: SocketAddress)?

    /// The home relay, once attached: its peers get stand-ins in `homeRelaySlot`.
    private var homeRelay: (path: any QUICRelayPath, inbox: RelayInbox)?
    static let homeRelaySlot: UInt16 = 0
    /// Stand-in addresses of relayed peers, pinned by the connections that use them.
    private var standIns: RelayStandIns

    /// Connections that received packets in the current read batch and owe an answer.
    private var pendingWrites: [QUICConnectionCore] = []
    /// Connections that stopped writing because the channel was full.
    private var blockedWriters: [QUICConnectionCore] = []
    private(set) var channelWritable = true

    init(
        channel: any Channel, localAddress: SocketAddress, dualStack: Bool, tls: TLSContext,
        configuration: QUICConfiguration, segmentationOffload: Bool, acceptsConnections: Bool,
        incoming: AsyncStream<QUICConnection>.Continuation, logger: Logger
    ) {
        self.eventLoop = channel.eventLoop
        self.channel = channel
        self.allocator = channel.allocator
        self.localAddress = localAddress
        self.addressing = UDPAddressing(localAddress: localAddress, dualStack: dualStack)
        self.tls = tls
        self.configuration = configuration
        self.segmentationOffload = segmentationOffload
        self.acceptsConnections = acceptsConnections
        self.incoming = incoming
        self.logger = logger
        self.standIns = RelayStandIns(capacity: configuration.maxRelayPeers)
    }

    // MARK: Packets from the channel

    /// One received datagram, or several coalesced by GRO (`segmentSize` set).
    func receive(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard !closed else { return }
        let remote = logical(envelope.remoteAddress)
        // Stand-ins name relayed peers only; on the wire such a source is forged or foreign.
        guard !RelayStandIns.isStandIn(remote) else { return }
        receiveSegments(envelope.data, segmentSize: envelope.metadata?.segmentSize, from: remote)
    }

    /// Splits a batch into datagrams of `segmentSize` bytes (the last may be shorter).
    private func receiveSegments(_ data: ByteBuffer, segmentSize: Int?, from remote: SocketAddress) {
        let segment = segmentSize ?? data.readableBytes
        data.withUnsafeReadableBytes { all in
            var offset = 0
            while offset < all.count {
                let length = min(segment > 0 ? segment : all.count, all.count - offset)
                receiveDatagram(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)]), from: remote)
                offset += length
            }
        }
    }

    // MARK: The home relay

    /// Makes `path` this endpoint's home relay: its datagrams feed the endpoint from now on, and
    /// `connect(to:via: .relay)` dials through it.
    func attachRelay(_ path: any QUICRelayPath) throws {
        guard !closed else { throw QUICError(.endpointClosed, closedCause ?? "QUIC endpoint is closed") }
        guard homeRelay == nil else {
            throw QUICError(.limitReached, "this QUIC endpoint already has a home relay; it carries one for now")
        }
        let inbox = RelayInbox(limit: configuration.socketBufferSize)
        homeRelay = (path, inbox)
        let loop = eventLoop
        path.setReceiver { [self] source, data, segmentSize in
            guard inbox.offer(RelayInbox.Delivery(source: source, data: data, segmentSize: segmentSize)) else { return }
            loop.execute { self.assumeIsolated { $0.drainRelayInbox() } }
        }
    }

    /// Feeds what the home relay delivered since the last drain, as one read burst.
    private func drainRelayInbox() {
        guard !closed, let homeRelay else { return }
        for delivery in homeRelay.inbox.take() {
            // The segment size cuts the datagrams whose lengths reach ngtcp2: one outside a UDP
            // payload's range is the relay's error, and the batch is dropped.
            if let segmentSize = delivery.segmentSize, !(1...65_535).contains(segmentSize) { continue }
            let peer = RelayStandIns.Peer(slot: Self.homeRelaySlot, id: delivery.source)
            guard let standIn = standIns.address(for: peer) else {
                logger.debug("relayed datagram dropped: every relay stand-in address is in use",
                    metadata: ["peer.id52": "\(delivery.source)"])
                continue
            }
            receiveSegments(delivery.data, segmentSize: delivery.segmentSize, from: standIn)
        }
        readComplete()
    }

    /// How a connection to `remote` sends when `remote` is a relayed peer's stand-in.
    private func relayRoute(to remote: SocketAddress) -> RelayRoute? {
        guard let homeRelay, let peer = standIns.peer(at: remote), peer.slot == Self.homeRelaySlot else { return nil }
        return RelayRoute(path: homeRelay.path, peer: peer.id)
    }

    /// The plain IPv4 form of an IPv4-mapped source on a dual-stack socket.
    private func logical(_ remote: SocketAddress) -> SocketAddress {
        guard addressing.dualStack, case .v6 = remote else { return remote }
        if let lastMapped, lastMapped.wire == remote { return lastMapped.logical }
        let plain = addressing.logical(remote)
        lastMapped = (remote, plain)
        return plain
    }

    private func receiveDatagram(_ datagram: UnsafeRawBufferPointer, from remote: SocketAddress) {
        guard let base = datagram.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var versionCID = ngtcp2_version_cid()
        let rv = ngtcp2_pkt_decode_version_cid(&versionCID, base, datagram.count, ConnectionID.localLength)
        guard rv == 0, let dcid = versionCID.dcid else {
            // Unsupported version or garbage: peerpool speaks QUIC v1 only and answers nothing.
            return
        }
        let key = ConnectionID(bytes: dcid, count: versionCID.dcidlen)
        if let connection = routes[key] {
            let lent = Unchecked(datagram)
            connection.assumeIsolated { $0.receive(lent.value, from: remote) }
            return
        }
        accept(datagram, base: base, from: remote)
    }

    /// A packet for no known connection: a client's first Initial starts a server connection.
    private func accept(_ datagram: UnsafeRawBufferPointer, base: UnsafePointer<UInt8>, from remote: SocketAddress) {
        guard acceptsConnections, !tls.identities.isEmpty else { return }
        var header = ngtcp2_pkt_hd()
        guard ngtcp2_accept(&header, base, datagram.count) == 0 else { return }
        guard connections.count < configuration.maxConnections else {
            logger.debug("QUIC connection refused: endpoint at its connection limit")
            return
        }
        let connection = QUICConnectionCore(
            endpoint: self, eventLoop: eventLoop, tls: tls, configuration: configuration, isServer: true,
            remoteAddress: remote, relayRoute: relayRoute(to: remote), localIdentity: nil, expectedPeer: nil, logger: logger)
        do {
            try connection.assumeIsolated { try $0.startServer(localAddress: localAddress, header: header) }
        } catch {
            logger.debug("QUIC server connection setup failed", metadata: ["error": "\(error)"])
            return
        }
        add(connection)
        let lent = Unchecked(datagram)
        connection.assumeIsolated { $0.receive(lent.value, from: remote) }
    }

    /// End of one read burst: every connection that received something answers now.
    func readComplete() {
        let writers = pendingWrites
        pendingWrites = []
        for connection in writers {
            connection.assumeIsolated {
                $0.pendingWriteQueued = false
                $0.writePackets()
            }
        }
        channel.flush()
    }

    func needsWrite(_ connection: QUICConnectionCore) {
        guard !connection.assumeIsolated({ $0.pendingWriteQueued }) else { return }
        connection.assumeIsolated { $0.pendingWriteQueued = true }
        pendingWrites.append(connection)
    }

    func writabilityChanged(_ writable: Bool) {
        channelWritable = writable
        guard writable else { return }
        let blocked = blockedWriters
        blockedWriters = []
        for connection in blocked { connection.assumeIsolated { $0.writePackets() } }
        channel.flush()
    }

    func waitForWritable(_ connection: QUICConnectionCore) {
        if !blockedWriters.contains(where: { $0 === connection }) { blockedWriters.append(connection) }
    }

    // MARK: Connections

    func connect(to peer: ID52, via path: QUICPath, as identity: ID52?) async throws -> QUICConnection {
        guard !closed else { throw QUICError(.endpointClosed, closedCause ?? "QUIC endpoint is closed") }
        let local: TLSIdentity
        if let identity {
            guard let found = tls.identities[identity] else {
                throw QUICError(.noIdentity, "this endpoint holds no secret key for \(identity)")
            }
            local = found
        } else {
            guard tls.identities.count == 1, let only = tls.identities.values.first else {
                throw QUICError(.noIdentity, tls.identities.isEmpty
                    ? "this endpoint holds no identity to connect with"
                    : "this endpoint holds \(tls.identities.count) identities: say which one connects")
            }
            local = only
        }
        guard connections.count < configuration.maxConnections else {
            throw QUICError(.limitReached, "QUIC endpoint holds \(connections.count) connections, its limit")
        }
        let address: SocketAddress
        let route: RelayRoute?
        switch path.kind {
        case .udp(let given):
            // Before anything is sent: an address the socket cannot send to must fail this
            // request, not close the socket under every other connection.
            address = addressing.logical(given)
            guard !RelayStandIns.isStandIn(address) else {
                throw QUICError(.addressUnreachable,
                    "cannot send to \(UDPAddressing.describe(address)): it is a relay stand-in address; connect via .relay")
            }
            try addressing.checkSendable(address)
            route = nil
        case .homeRelay:
            guard let homeRelay else {
                throw QUICError(.noRelayPath,
                    "cannot reach \(peer) via a relay: this endpoint has none; attach one with QUICEndpoint.attachRelay(_:)")
            }
            guard let standIn = standIns.address(for: RelayStandIns.Peer(slot: Self.homeRelaySlot, id: peer)) else {
                throw QUICError(.limitReached,
                    "QUIC endpoint talks to \(standIns.count) relayed peers, its limit (QUICConfiguration.maxRelayPeers)")
            }
            address = standIn
            route = RelayRoute(path: homeRelay.path, peer: peer)
        }
        let connection = try startClient(to: peer, at: address, via: route, as: local)
        return try await connection.handshake()
    }

    private func startClient(
        to peer: ID52, at address: SocketAddress, via route: RelayRoute?, as local: TLSIdentity
    ) throws -> QUICConnectionCore {
        let connection = QUICConnectionCore(
            endpoint: self, eventLoop: eventLoop, tls: tls, configuration: configuration, isServer: false,
            remoteAddress: address, relayRoute: route, localIdentity: local, expectedPeer: peer, logger: logger)
        try connection.assumeIsolated { try $0.startClient(localAddress: localAddress, serverName: peer) }
        add(connection)
        return connection
    }

    private func add(_ connection: QUICConnectionCore) {
        connections.insert(ObjectIdentifier(connection))
        if connection.relayRoute != nil { standIns.pin(connection.remoteAddress) }
        for id in connection.assumeIsolated({ $0.connectionIDs }) { routes[id] = connection }
    }

    func route(_ id: ConnectionID, to connection: QUICConnectionCore) {
        routes[id] = connection
    }

    func unroute(_ id: ConnectionID) {
        routes[id] = nil
    }

    /// A connection ended: forget its routes.
    func remove(_ connection: QUICConnectionCore) {
        guard connections.remove(ObjectIdentifier(connection)) != nil else { return }
        if connection.relayRoute != nil { standIns.unpin(connection.remoteAddress) }
        for id in connection.assumeIsolated({ $0.connectionIDs }) where routes[id] === connection {
            routes[id] = nil
        }
        pendingWrites.removeAll { $0 === connection }
        blockedWriters.removeAll { $0 === connection }
    }

    /// A server connection finished its handshake: offer it to `accept`, or refuse it when the
    /// backlog is full.
    func deliverIncoming(_ handle: QUICConnection, core: QUICConnectionCore) {
        switch incoming.yield(handle) {
        case .enqueued: return
        case .dropped, .terminated:
            core.assumeIsolated {
                $0.terminate(.error("refused: accept backlog full"), closeWith: .transport(UInt64(NGTCP2_CONNECTION_REFUSED)))
            }
        @unknown default: return
        }
    }

    var connectionCount: Int { connections.count }

    /// The channel reported an error; if it closes next, this is why.
    func socketFailed(_ error: any Error) {
        socketError = error
    }

    /// The socket closed under us (SwiftNIO closes a datagram channel on most send errors): every
    /// connection ends with the cause, and new connects fail with `endpoint_closed`.
    func socketClosed() {
        guard !closed else { return }
        let cause = socketError.map { "\($0)" } ?? "SwiftNIO closed it, most likely after a send the kernel refused"
        logger.error("QUIC endpoint's UDP socket closed", metadata: ["local": "\(localAddress)", "error": "\(cause)"])
        let why = "the UDP socket \(addressing.localDescription) closed: \(cause)"
        closedCause = why
        let observers = closedObservers
        shutDown(reason: .error(why), closeWith: nil)
        for observer in observers { observer(why) }
    }

    /// Why the endpoint closed on its own, if it did.
    private(set) var closedCause: String?
    private var closedObservers: [@Sendable (String) -> Void] = []

    /// Calls `body` with the cause once the socket closed on its own (at once if it did).
    func whenClosedOnItsOwn(_ body: @escaping @Sendable (String) -> Void) {
        if let closedCause { body(closedCause) } else if !closed { closedObservers.append(body) }
    }

    /// Closes every connection with `code`, then the socket.
    func close(code: UInt64) {
        shutDown(reason: .endpointClosed, closeWith: .application(code, "endpoint closed"))
    }

    private func shutDown(reason: QUICCloseReason, closeWith: QUICConnectionCore.CloseFrame?) {
        guard !closed else { return }
        closed = true
        var unique: [ObjectIdentifier: QUICConnectionCore] = [:]
        for connection in routes.values { unique[ObjectIdentifier(connection)] = connection }
        for connection in unique.values {
            connection.assumeIsolated { $0.terminate(reason, closeWith: closeWith) }
        }
        routes = [:]
        connections = []
        incoming.finish()
        closedObservers = []
        // The relay client may outlive the endpoint: let it drop what it still delivers.
        homeRelay?.path.setReceiver { _, _, _ in }
        homeRelay = nil
        channel.close(promise: nil)
    }
}
