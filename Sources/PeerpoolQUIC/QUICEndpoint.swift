import Logging
import NIOCore
import NIOPosix
import PeerpoolIdentity

/// One UDP socket speaking authenticated QUIC, holding one or more local identities.
///
/// It dials out (`connect`) and, if `acceptIncoming` was set, answers peers that name one of
/// its identities in SNI (`incomingConnections`). An endpoint with a single identity answers
/// whatever the SNI says: the client checks the key it gets, and refuses a wrong one. Every connection on it runs on the socket's
/// event loop; scale across cores with more endpoints (or worker processes).
///
/// With a relay attached (`attachRelay(_:)`) it also reaches peers by ID52 alone, through that
/// relay, and answers peers that reach it there; those connections run on the same loop.
public final class QUICEndpoint: Sendable {
    let core: QUICEndpointCore
    /// The address the socket is bound to (with the real port when bound to port 0).
    public let localAddress: SocketAddress
    /// The identities this endpoint can present.
    public let identities: [ID52]
    /// Established incoming connections, in arrival order. Bounded by
    /// `QUICConfiguration.acceptBacklog`: past it, new connections are refused.
    public let incomingConnections: AsyncStream<QUICConnection>
    /// Runs tasks on the socket's event loop: prefer it for non-blocking work that talks to this
    /// endpoint's connections, to save a thread switch per call.
    public let taskExecutor: EventLoopTaskExecutor

    private init(core: QUICEndpointCore, localAddress: SocketAddress, identities: [ID52], incoming: AsyncStream<QUICConnection>) {
        self.core = core
        self.localAddress = localAddress
        self.identities = identities
        self.incomingConnections = incoming
        self.taskExecutor = EventLoopTaskExecutor(core.eventLoop)
    }

    /// Binds a UDP socket (IPv4 or IPv6, port 0 for any) and starts serving it.
    ///
    /// A socket bound to an IPv6 address (`"::"`) is dual-stack: it also reaches IPv4 peers
    /// (`isDualStack`). One bound to an IPv4 address reaches IPv4 peers only; connecting to an
    /// IPv6 address from it fails with `address_unreachable`, as does any address the kernel
    /// would refuse to send to (broadcast, multicast, no route). Such a failure is that one
    /// call's: the socket and its other connections carry on.
    ///
    /// A client that names one of `identities` in SNI (`<ID52>.iroh.invalid` or the bare ID52)
    /// gets that one. A client that sends no SNI (iroh 1.0.4 and later never do) gets
    /// `answeringWithoutSNI`, which defaults to the only identity; an endpoint with several and
    /// none named refuses such clients. To serve iroh clients as several identities, bind one
    /// socket per identity.
    public static func bind(
        host: String,
        port: Int,
        identities: [SecretKey],
        answeringWithoutSNI: ID52? = nil,
        acceptIncoming: Bool = true,
        configuration: QUICConfiguration = QUICConfiguration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "peerpool.quic", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> QUICEndpoint {
        try configuration.validate()
        let tls = try TLSContext(identities: identities, alpn: configuration.alpn, x509Fallback: configuration.allowsX509Fallback,
            defaultIdentity: answeringWithoutSNI)
        let (stream, continuation) = AsyncStream<QUICConnection>.makeStream(
            bufferingPolicy: .bufferingOldest(configuration.acceptBacklog))
        let offload = configuration.useOffload && System.supportsUDPSegmentationOffload
        let receiveOffload = configuration.useOffload && System.supportsUDPReceiveOffload
        let bootstrap = DatagramBootstrap(group: eventLoopGroup)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.socketBufferSize))
            .channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(configuration.socketBufferSize))
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelOption(.datagramVectorReadMessageCount, value: receiveOffload ? 8 : 32)
            .channelOption(
                .recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: receiveOffload ? 8 * 65_536 : 32 * 2048))
        var bootstrapFamily = bootstrap
        if host.contains(":") {
            // Before bind, the only time Linux lets it change: one socket for both families.
            bootstrapFamily = bootstrap.channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 0)
        }
        let channel: any Channel
        var dualStack = false
        do {
            channel = try await bootstrapFamily.bind(host: host, port: port).get()
            if channel.localAddress?.protocol == .inet6 {
                // IPv4 peers are reached as ::ffff:a.b.c.d; a host may forbid it (bindv6only).
                let v6only = try? await channel.getOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only)).get()
                dualStack = v6only == 0
            }
            if receiveOffload {
                try await channel.setOption(.datagramReceiveOffload, value: true).get()
                try await channel.setOption(.datagramReceiveSegmentSize, value: true).get()
            }
        } catch {
            throw QUICError(.bind, "cannot bind UDP \(host):\(port): \(error)")
        }
        guard let localAddress = channel.localAddress else {
            channel.close(promise: nil)
            throw QUICError(.bind, "UDP socket \(host):\(port) has no local address")
        }
        let core = QUICEndpointCore(
            channel: channel, localAddress: localAddress, dualStack: dualStack, tls: tls, configuration: configuration,
            segmentationOffload: offload, acceptsConnections: acceptIncoming, incoming: continuation, logger: logger)
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(QUICEndpointHandler(core: core))
        }.get()
        channel.closeFuture.whenComplete { _ in
            // One turn later: SwiftNIO reports the error that closed the channel after the close.
            channel.eventLoop.execute { core.assumeIsolated { $0.socketClosed() } }
        }
        return QUICEndpoint(
            core: core, localAddress: localAddress, identities: identities.map(\.id52), incoming: stream)
    }

    /// Connects to `peer` at `address`, presenting `identity` (optional when the endpoint holds
    /// exactly one). Returns once the handshake is complete and the peer proved `peer`'s key.
    /// Fails with `.wrongPeerKey` naming both keys when another key answers, `.handshakeTimeout`
    /// after `QUICConfiguration.handshakeTimeout`.
    public func connect(to peer: ID52, at address: SocketAddress, as identity: ID52? = nil) async throws -> QUICConnection {
        try await core.connect(to: peer, via: .udp(address), as: identity)
    }

    /// Connects to `peer` over `path`: `.udp(address)` is `connect(to:at:as:)`; `.relay` dials
    /// through the home relay (`attachRelay(_:)`) by ID52 alone, and fails with `no_relay_path`
    /// when none is attached. The handshake is the same either way: the peer must prove `peer`'s
    /// key. The connection stays on its path; it never moves between the relay and UDP.
    public func connect(to peer: ID52, via path: QUICPath, as identity: ID52? = nil) async throws -> QUICConnection {
        try await core.connect(to: peer, via: path, as: identity)
    }

    /// Makes `path` (an iroh relay client connected to this endpoint's home relay) carry QUIC
    /// for this endpoint: `connect(to:via: .relay)` dials through it, and peers that reach us
    /// through it are accepted like UDP peers (with `acceptIncoming`). Each relayed peer gets a
    /// stand-in IPv6 address in `fd70:6565:7270::/48` for as long as connections to it live
    /// (at most `QUICConfiguration.maxRelayPeers` at once); such addresses never reach the
    /// socket. A connection that arrives through the relay must prove the key of the peer the
    /// relay named as its source, or it is refused during the handshake.
    ///
    /// The endpoint calls `path.send` on its event loop and installs a receiver that hops onto
    /// that loop; it holds `path` until it closes, then installs a receiver that drops
    /// everything. An endpoint carries one relay for now: a second call fails with
    /// `limit_reached`.
    public func attachRelay(_ path: any QUICRelayPath) async throws {
        let core = self.core
        try await core.eventLoop.submit { try core.assumeIsolated { try $0.attachRelay(path) } }.get()
    }

    /// Closes every connection with `code` and then the socket.
    public func close(code: UInt64 = 0) async {
        await core.close(code: code)
        try? await core.channel.closeFuture.get()
    }

    /// Calls `body` with the cause if the socket ever closes without `close(code:)` (SwiftNIO
    /// closes a datagram channel on a send error it cannot recover from). Every connection has
    /// already failed with that cause by then, and new connects fail with `endpoint_closed`:
    /// a process that serves only this endpoint should exit and be restarted.
    public func whenClosedOnItsOwn(_ body: @escaping @Sendable (String) -> Void) {
        let core = self.core
        core.eventLoop.execute { core.assumeIsolated { $0.whenClosedOnItsOwn(body) } }
    }

    /// Whether the socket carries IPv4 as well as IPv6 (bound to an IPv6 address, IPV6_V6ONLY off).
    public var isDualStack: Bool { core.addressing.dualStack }

    /// Connections open or handshaking on this socket.
    public var connectionCount: Int {
        get async { await core.connectionCount }
    }
}

/// Feeds the socket's datagrams into the endpoint; runs on the channel's event loop.
final class QUICEndpointHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let core: QUICEndpointCore

    init(core: QUICEndpointCore) {
        self.core = core
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        core.assumeIsolated { $0.receive(envelope) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        core.assumeIsolated { $0.readComplete() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        core.assumeIsolated { $0.writabilityChanged(writable) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors (ECONNREFUSED from a closed peer port) arrive here; QUIC's own timers decide
        // what they mean, so the socket stays open. If SwiftNIO closes the channel after this
        // error (it does for most send errors), the endpoint reports it as the cause.
        core.assumeIsolated { $0.socketFailed(error) }
    }
}
