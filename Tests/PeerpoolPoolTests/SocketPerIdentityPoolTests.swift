import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

/// A pool over one socket per identity: each pair dials from the socket holding its local
/// identity, so the peer sees each identity at that identity's own address.
@Suite(.timeLimit(.minutes(3)))
struct SocketPerIdentityPoolTests {
    @Test func eachIdentityDialsFromItsOwnSocket() async throws {
        let keys = [SecretKey.generate(), SecretKey.generate()]
        var sockets: [QUICEndpoint] = []
        for key in keys {
            sockets.append(try await QUICEndpoint.bind(
                host: "127.0.0.1", port: 0, identities: [key], acceptIncoming: false, configuration: quicConfiguration()))
        }
        let endpoints = sockets
        // A peer that records who dialled from where, and answers fastn's Ping.
        let peerKey = SecretKey.generate()
        let server = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [peerKey], configuration: quicConfiguration())
        let seen = SeenAddresses()
        let serving = Task {
            await withDiscardingTaskGroup { group in
                for await connection in server.incomingConnections {
                    await seen.add(connection.remoteID52, connection.remoteAddress)
                    group.addTask {
                        while let stream = try? await connection.acceptStream() {
                            var line: [UInt8] = []
                            while !line.contains(UInt8(ascii: "\n")), let chunk = try? await stream.read() { line += chunk.readableBytesView }
                            try? await stream.write(Array("ack\npong\n".utf8))
                            try? await stream.finish()
                        }
                    }
                }
            }
        }
        let pool = PeerPool(endpoints: endpoints, configuration: poolConfiguration())
        let peer = PeerAddress(peerKey.id52, at: server.localAddress)
        try await withCleanup {
            for key in keys {
                _ = try await pool.ping(peer, from: key.id52)
            }
            let addresses = await seen.addresses
            for (key, endpoint) in zip(keys, endpoints) {
                #expect(addresses[key.id52] == endpoint.localAddress, "\(key.id52) came from \(String(describing: addresses[key.id52]))")
            }
            #expect(await pool.connectionCount == 2)

            // Naming no identity is ambiguous with two; naming a stranger is refused.
            let ambiguous = await #expect(throws: PoolError.self) { _ = try await pool.ping(peer) }
            #expect(ambiguous?.code == .noIdentity)
            let stranger = await #expect(throws: PoolError.self) {
                _ = try await pool.ping(peer, from: SecretKey.generate().id52)
            }
            #expect(stranger?.code == .noIdentity)
        } cleanup: {
            serving.cancel()
            await pool.shutdown()
            await server.close()
            for endpoint in endpoints { await endpoint.close() }
        }
    }
}

private actor SeenAddresses {
    var addresses: [ID52: SocketAddress] = [:]
    func add(_ id: ID52, _ address: SocketAddress) { addresses[id] = address }
}
