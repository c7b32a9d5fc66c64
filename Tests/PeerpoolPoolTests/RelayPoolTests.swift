import Foundation
import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolRelay
import PeerpoolTestSupport
import Testing

/// The pool dialling a peer that discovery names only by its relay, through a real relay
/// (`iroh_relay.py`), with real relay clients on both sides: no UDP path between them is known.
@Suite(.timeLimit(.minutes(2)))
struct RelayPoolTests {
    /// A peer serving echo whose socket's home relay is `relay`.
    static func relayedPeer(_ relay: PythonTestRelay) async throws -> (TestPeer, IrohRelayClient) {
        let peer = try await TestPeer()
        let client = IrohRelayClient(url: relay.url, secretKey: peer.key, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        client.start()
        try await client.waitUntilConnected(timeout: .seconds(20))
        try await peer.endpoint.attachRelay(client)
        return (peer, client)
    }

    /// A pool whose address book names only relays for `peer`, as an iroh 1.x record does.
    static func pool(to peer: ID52, relays: [String], _ change: (inout PoolConfiguration) -> Void = { _ in }) async throws -> PeerPool {
        let key = SecretKey.generate()
        let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], acceptIncoming: false, configuration: quicConfiguration())
        return PeerPool(
            endpoint: endpoint, resolver: AddressBook(relays: [peer: relays]), configuration: poolConfiguration(change),
            relays: .iroh(keys: [key], connectTimeout: .seconds(20)))
    }

    @Test func relayOnlyPeer_echoes8MiB_throughItsRelay() async throws {
        let relay = try await PythonTestRelay.start()
        let (peer, client) = try await Self.relayedPeer(relay)
        let pool = try await Self.pool(to: peer.key.id52, relays: [relay.url + "/"])
        let size = 8 << 20
        let (received, mismatch) = try await echo(size, through: pool, to: PeerAddress(peer.key.id52))
        #expect(received == size && mismatch == nil, "\(received) bytes, first mismatch at \(String(describing: mismatch))")
        #expect(try await pool.ping(PeerAddress(peer.key.id52)) > .zero)
        #expect(try await relay.stats().forwardedBytes > 2 * size)
        await pool.shutdown()
        await client.close()
        await peer.stop()
    }

    /// The relay dies under a running connection and comes back on its port: the relay clients
    /// reconnect, and a request made afterwards completes (on the old connection, or a new one
    /// after the old failed with its cause); nothing hangs.
    @Test func relayRestarted_requestsAfterItComplete_orFailWithTheCause() async throws {
        var relay = try await PythonTestRelay.start()
        let port = relay.port
        let (peer, client) = try await Self.relayedPeer(relay)
        let pool = try await Self.pool(to: peer.key.id52, relays: [relay.url]) { $0.connectTimeout = .seconds(20) }
        let target = PeerAddress(peer.key.id52)
        #expect(try await echoRoundTrip(pool, target, "before") == "before")

        await relay.kill()
        relay = try await PythonTestRelay.start(port: port)
        try await client.waitUntilConnected(timeout: .seconds(20))

        var outcomes: [String] = []
        for _ in 0..<5 {
            do {
                let answer = try await echoRoundTrip(pool, target, "after")
                outcomes.append(answer)
                if answer == "after" { break }
            } catch {
                outcomes.append("\(error)")
            }
        }
        #expect(outcomes.last == "after", "\(outcomes)")
        await pool.shutdown()
        await client.close()
        await peer.stop()
        withExtendedLifetime(relay) {}
    }

    @Test func peerNamingAnotherRelayThanTheSocketsHome_failsWithNoAddress_namingBoth() async throws {
        let relay = try await PythonTestRelay.start()
        let (peer, client) = try await Self.relayedPeer(relay)
        let other = try await PythonTestRelay.start()
        let (stranger, strangerClient) = try await Self.relayedPeer(other)
        let key = SecretKey.generate()
        let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], acceptIncoming: false, configuration: quicConfiguration())
        let pool = PeerPool(
            endpoint: endpoint, resolver: AddressBook(relays: [peer.key.id52: [relay.url], stranger.key.id52: [other.url]]),
            configuration: poolConfiguration(), relays: .iroh(keys: [key]))
        #expect(try await echoRoundTrip(pool, PeerAddress(peer.key.id52), "home") == "home")
        let error = await #expect(throws: PoolError.self) { try await echoRoundTrip(pool, PeerAddress(stranger.key.id52), "x") }
        #expect(error?.code == .noAddress, "\(String(describing: error))")
        #expect(error?.message.contains(other.url) == true && error?.message.contains(relay.url) == true, "\(String(describing: error))")
        await pool.shutdown()
        await client.close()
        await strangerClient.close()
        await peer.stop()
        await stranger.stop()
    }
}

extension RelayPoolTests {
    /// `connectHomeRelay` makes the relay connection before any dial, so a relayed peer can
    /// reach this socket at once; a second, different relay is refused (one per socket).
    @Test func connectHomeRelay_beforeDialling_thenTheFirstDialUsesIt_andAnotherRelayIsRefused() async throws {
        let relay = try await PythonTestRelay.start()
        let (peer, client) = try await Self.relayedPeer(relay)
        let pool = try await Self.pool(to: peer.key.id52, relays: [relay.url])
        try await pool.connectHomeRelay(relay.url)
        _ = try await relay.value(of: "ACCEPTED", within: .seconds(20))  // the peer's
        _ = try await relay.value(of: "ACCEPTED", within: .seconds(20))  // the pool's, before any dial
        #expect(try await echoRoundTrip(pool, PeerAddress(peer.key.id52), "warm") == "warm")
        let error = await #expect(throws: PoolError.self) { try await pool.connectHomeRelay("http://127.0.0.1:1") }
        #expect(error?.code == .limitReached, "\(String(describing: error))")
        await pool.shutdown()
        await client.close()
        await peer.stop()
    }
}

/// The address book file names relays as iroh records do, `relay=URL`, beside addresses.
@Suite struct AddressBookFileTests {
    static func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-book-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func relayValues_areRoutes_andAddressesStayAddresses() async throws {
        let (a, b) = (SecretKey.generate().id52, SecretKey.generate().id52)
        let path = try Self.write("\(a) 127.0.0.1:4433 relay=http://127.0.0.1:3340/  # both\n\(b) relay=https://relay.example\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let book = try AddressBook(contentsOfFile: path)
        #expect(try await book.route(to: a) == PeerRoute(addresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 4433)], relayURLs: ["http://127.0.0.1:3340/"]))
        #expect(try await book.route(to: b) == PeerRoute(relayURLs: ["https://relay.example"]))
        #expect(try await book.addresses(of: b).isEmpty)
    }

    @Test func aRelayThatIsNotAnHTTPURL_isRefusedNamingTheLine() throws {
        let path = try Self.write("\(SecretKey.generate().id52) relay=ftp://x\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: PoolError.self) { try AddressBook(contentsOfFile: path) }
        #expect(error?.code == .badAddress && error?.message.contains(":1:") == true, "\(String(describing: error))")
    }
}
