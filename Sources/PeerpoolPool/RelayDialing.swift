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
        let home = self.home(of: endpoint, else: urls[0], as: local)
        guard urls.contains(where: { Self.sameRelay($0, home.url) }) else {
            let named = urls.map { "relay=\($0)" }.joined(separator: " ")
            throw PoolError(.noAddress, peer: remote, "\(remote) names only \(named), but this socket's home relay is \(home.url) (one relay per socket; give the identity a socket of its own to use another)")
        }
        do {
            try await ready(home, of: endpoint)
        } catch {
            throw PoolError(.connectFailed, peer: remote, "cannot reach \(remote) through relay \(home.url): \(error)")
        }
        return try await endpoint.connect(to: remote, via: .relay, as: local)
    }

    /// Connects the socket to `url` as its home relay now (as iroh does when an endpoint starts),
    /// so the first relayed dial does not wait for it and peers can reach us through it.
    func attach(_ url: String, to endpoint: QUICEndpoint, as local: ID52) async throws {
        let home = self.home(of: endpoint, else: url, as: local)
        guard Self.sameRelay(url, home.url) else {
            throw PoolError(.limitReached, "this socket's home relay is already \(home.url) (one relay per socket)")
        }
        try await ready(home, of: endpoint)
    }

    /// The socket's home relay, started toward `url` if it has none.
    private func home(of endpoint: QUICEndpoint, else url: String, as local: ID52) -> Home {
        let key = ObjectIdentifier(endpoint)
        if let existing = homes[key] { return existing }
        let dialing = self.dialing
        let client = Task {
            let client = try await dialing.makeClient(url, local)
            try await endpoint.attachRelay(client)
            return client
        }
        let home = Home(url: url, client: client)
        homes[key] = home
        return home
    }

    /// Waits for the home relay's connection; a failed one is forgotten, so the next request tries again.
    private func ready(_ home: Home, of endpoint: QUICEndpoint) async throws {
        do {
            _ = try await home.client.value
        } catch {
            let key = ObjectIdentifier(endpoint)
            if homes[key]?.url == home.url { homes[key] = nil }
            throw error
        }
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
