import Metrics
import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport

func quicConfiguration(_ change: (inout QUICConfiguration) -> Void = { _ in }) -> QUICConfiguration {
    var configuration = QUICConfiguration()
    // Generous: a loaded 2-core CI machine runs the heavy suites alongside. Tests about
    // timeouts set their own small values.
    configuration.handshakeTimeout = .seconds(15)
    configuration.idleTimeout = .seconds(30)
    change(&configuration)
    return configuration
}

func poolConfiguration(_ change: (inout PoolConfiguration) -> Void = { _ in }) -> PoolConfiguration {
    var configuration = PoolConfiguration()
    configuration.connectTimeout = .seconds(15)
    configuration.ackTimeout = .seconds(15)
    change(&configuration)
    return configuration
}

/// A peer serving fastn's protocol in this process: Ping, echo, and what a test adds.
final class TestPeer: Sendable {
    let endpoint: QUICEndpoint
    let key: SecretKey
    private let task: Task<Void, any Error>

    init(
        protocols: Set<StreamProtocol> = [.generic("echo")], extraLine: Set<StreamProtocol> = [],
        configuration: QUICConfiguration = quicConfiguration(), port: Int = 0,
        handler: (@Sendable (IncomingStream) async -> Void)? = nil
    ) async throws {
        key = SecretKey.generate()
        endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: port, identities: [key], configuration: configuration)
        var acceptorConfiguration = AcceptorConfiguration(protocols: protocols)
        acceptorConfiguration.protocolsWithExtraLine = extraLine
        let acceptor = StreamAcceptor(endpoint: endpoint, configuration: acceptorConfiguration, handler: handler ?? echo)
        task = Task { try await acceptor.run() }
    }

    var address: PeerAddress { PeerAddress(key.id52, at: endpoint.localAddress) }

    func stop() async {
        task.cancel()
        await endpoint.close()
    }
}

/// Runs `body` with a started `TestPeer`, then stops it, awaited, whether `body` returned or threw.
func withTestPeer<T>(
    protocols: Set<StreamProtocol> = [.generic("echo")], extraLine: Set<StreamProtocol> = [],
    configuration: QUICConfiguration = quicConfiguration(), handler: (@Sendable (IncomingStream) async -> Void)? = nil,
    _ body: (TestPeer) async throws -> T
) async throws -> T {
    let peer = try await TestPeer(protocols: protocols, extraLine: extraLine, configuration: configuration, handler: handler)
    return try await withCleanup { try await body(peer) } cleanup: { await peer.stop() }
}

@Sendable func echo(_ incoming: IncomingStream) async {
    do {
        while let chunk = try await incoming.stream.read() { try await incoming.stream.write(chunk) }
        try await incoming.stream.finish()
    } catch {}
}

/// A pool on a fresh dial-only endpoint.
func makePool(
    _ configuration: PoolConfiguration = poolConfiguration(), quic: QUICConfiguration = quicConfiguration(),
    resolver: any AddressResolver = AddressBook(), metrics: (any MetricsFactory)? = nil
) async throws -> PeerPool {
    let endpoint = try await QUICEndpoint.bind(
        host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], acceptIncoming: false, configuration: quic)
    return PeerPool(endpoint: endpoint, resolver: resolver, configuration: configuration, metricsFactory: metrics ?? NOOPMetricsHandler.instance)
}

/// Runs `body` with a pool from `makePool`, then shuts the pool down, awaited, whether `body`
/// returned or threw.
func withPool<T>(
    _ configuration: PoolConfiguration = poolConfiguration(), quic: QUICConfiguration = quicConfiguration(),
    resolver: any AddressResolver = AddressBook(), metrics: (any MetricsFactory)? = nil,
    _ body: (PeerPool) async throws -> T
) async throws -> T {
    let pool = try await makePool(configuration, quic: quic, resolver: resolver, metrics: metrics)
    return try await withCleanup { try await body(pool) } cleanup: { await pool.shutdown() }
}

/// Runs `body` with an endpoint on 127.0.0.1 (a fresh port, a fresh identity unless given),
/// then closes it, awaited, whether `body` returned or threw.
func withEndpoint<T>(
    identities: [SecretKey] = [SecretKey.generate()], acceptIncoming: Bool = true, answeringWithoutSNI: ID52? = nil,
    _ body: (QUICEndpoint) async throws -> T
) async throws -> T {
    let endpoint = try await QUICEndpoint.bind(
        host: "127.0.0.1", port: 0, identities: identities, answeringWithoutSNI: answeringWithoutSNI,
        acceptIncoming: acceptIncoming, configuration: quicConfiguration())
    return try await withCleanup { try await body(endpoint) } cleanup: { await endpoint.close() }
}

/// A UDP socket that never answers: a silent peer.
func silentSocket() async throws -> any Channel {
    try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup).bind(host: "127.0.0.1", port: 0).get()
}

/// Echoes `text` through a fresh stream and returns what came back.
func echoRoundTrip(_ pool: PeerPool, _ peer: PeerAddress, _ text: String) async throws -> String {
    let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
    try await stream.write(Array(text.utf8))
    try await stream.finish()
    return String(buffer: try await stream.readToEnd(limit: 1 << 20))
}

/// A QUIC peer that speaks no stream protocol: `handle` gets each raw stream, which stays open
/// (held) until the peer stops, so the test decides what the opener sees.
final class RawPeer: Sendable {
    let endpoint: QUICEndpoint
    let key: SecretKey
    private let task: Task<Void, Never>

    init(handle: @escaping @Sendable (QUICStream) async -> Void) async throws {
        key = SecretKey.generate()
        let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], configuration: quicConfiguration())
        self.endpoint = endpoint
        task = Task {
            let held = Counter()
            await withDiscardingTaskGroup { group in
                for await connection in endpoint.incomingConnections {
                    group.addTask {
                        while let stream = try? await connection.acceptStream() {
                            await handle(stream)
                            await held.keep(stream)
                        }
                    }
                }
            }
        }
    }

    var address: PeerAddress { PeerAddress(key.id52, at: endpoint.localAddress) }

    func stop() async {
        task.cancel()
        await endpoint.close()
    }
}

/// Runs `body` with a started `RawPeer`, then stops it, awaited, whether `body` returned or threw.
func withRawPeer<T>(
    handle: @escaping @Sendable (QUICStream) async -> Void, _ body: (RawPeer) async throws -> T
) async throws -> T {
    let peer = try await RawPeer(handle: handle)
    return try await withCleanup { try await body(peer) } cleanup: { await peer.stop() }
}
