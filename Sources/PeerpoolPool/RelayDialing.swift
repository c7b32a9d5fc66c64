import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolQUIC
import PeerpoolRelay

extension IrohRelayClient: QUICRelayPath {}

/// How a pool reaches a peer that discovery names only by its relay (`relay=URL` and no
/// `addr=`), which is what most iroh 1.x peers publish: the pool connects the dialling socket to
/// that relay (its home relay from then on) and dials the peer through it.
///
/// One relay per socket: a socket whose home relay is already another one cannot reach a peer
/// that names only a different relay (`no_address` says so). Give each identity its own socket
/// (`PeerPool(endpoints:)`) to use several relays.
public struct RelayDialing: Sendable {
    /// Makes, starts and waits for the relay client of `url` that authenticates as `identity`.
    public var makeClient: @Sendable (_ url: String, _ identity: ID52) async throws -> IrohRelayClient

    public init(makeClient: @escaping @Sendable (_ url: String, _ identity: ID52) async throws -> IrohRelayClient) {
        self.makeClient = makeClient
    }

    /// iroh relay clients authenticated with the secret key of the identity they speak for.
    /// `connectTimeout` bounds connecting, the WebSocket upgrade and the relay's handshake.
    public static func iroh(
        keys: [SecretKey], group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectTimeout: Duration = .seconds(10)
    ) -> RelayDialing {
        let byID = Dictionary(keys.map { ($0.id52, $0) }, uniquingKeysWith: { first, _ in first })
        return RelayDialing { url, identity in
            guard let key = byID[identity] else {
                throw PoolError(.noIdentity, "no secret key for \(identity) to authenticate to relay \(url)")
            }
            let client = IrohRelayClient(url: url, secretKey: key, eventLoopGroup: group)
            client.start()
            do {
                try await client.waitUntilConnected(timeout: connectTimeout)
            } catch {
                await client.close()
                throw error
            }
            return client
        }
    }
}

/// The home relay each of a pool's sockets has, attached on first need and closed with the pool.
actor RelayAttachments {
    private struct Home {
        let url: String
        let client: Task<IrohRelayClient, any Error>
    }

    private let dialing: RelayDialing
    private var homes: [ObjectIdentifier: Home] = [:]

    init(_ dialing: RelayDialing) {
        self.dialing = dialing
    }

    /// Dials `remote` through the socket's home relay, attaching one of `urls` first if the
    /// socket has none. Concurrent callers for one socket share one relay connection.
    func connect(to remote: ID52, relayURLs urls: [String], endpoint: QUICEndpoint, as local: ID52) async throws -> QUICConnection {
        let key = ObjectIdentifier(endpoint)
        let home: Home
        if let existing = homes[key] {
            home = existing
        } else {
            let (url, dialing) = (urls[0], self.dialing)
            let client = Task {
                let client = try await dialing.makeClient(url, local)
                try await endpoint.attachRelay(client)
                return client
            }
            home = Home(url: url, client: client)
            homes[key] = home
        }
        guard urls.contains(where: { Self.sameRelay($0, home.url) }) else {
            let named = urls.map { "relay=\($0)" }.joined(separator: " ")
            throw PoolError(.noAddress, peer: remote, "\(remote) names only \(named), but this socket's home relay is \(home.url) (one relay per socket; give the identity a socket of its own to use another)")
        }
        do {
            _ = try await home.client.value
        } catch {
            if homes[key]?.url == home.url { homes[key] = nil }  // the next request tries again
            throw PoolError(.connectFailed, peer: remote, "cannot reach \(remote) through relay \(home.url): \(error)")
        }
        return try await endpoint.connect(to: remote, via: .relay, as: local)
    }

    /// Closes every relay client made here.
    func closeAll() async {
        let clients = homes.values.map(\.client)
        homes.removeAll()
        for client in clients {
            if let client = try? await client.value { await client.close() }
        }
    }

    /// URLs naming one relay: equal but for a trailing slash and the scheme's and host's case.
    static func sameRelay(_ a: String, _ b: String) -> Bool {
        func normal(_ url: String) -> String {
            var text = url.lowercased()
            while text.hasSuffix("/") { text.removeLast() }
            return text
        }
        return normal(a) == normal(b)
    }
}
