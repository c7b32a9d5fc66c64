import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import Testing

/// A peer known by several addresses is dialled on all of them at once: the first handshake
/// wins, a dead address ahead of a live one costs nothing, and losers never leak a connection.
@Suite(.timeLimit(.minutes(3)))
struct DialRaceTests {
    /// The silent address comes first and the connect timeout is longer than the test's time
    /// limit: dialled one after the other, the live address would never be reached in time.
    @Test func deadAddressFirst_theLiveOneStillConnects_withoutWaitingForTheDeadOne() async throws {
        let silent = try await silentSocket()
        let peer = try await TestPeer()
        let book = AddressBook([peer.key.id52: [silent.localAddress!, peer.endpoint.localAddress]])
        let pool = try await makePool(poolConfiguration { $0.connectTimeout = .seconds(120) }, resolver: book)
        let answer = try await echoRoundTrip(pool, PeerAddress(peer.key.id52), "both at once")
        #expect(answer == "both at once")
        await pool.shutdown()
        await peer.stop()
        try await silent.close()
    }

    /// Two live sockets of the same identity: one connection wins, and the pool holds exactly
    /// one (the loser, if it completed, was closed rather than kept or leaked).
    @Test func twoLiveAddresses_oneConnectionIsKept() async throws {
        let key = SecretKey.generate()
        let first = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], configuration: quicConfiguration())
        let second = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], configuration: quicConfiguration())
        let acceptors = [first, second].map { endpoint in
            Task { try await StreamAcceptor(endpoint: endpoint, configuration: AcceptorConfiguration(protocols: [.generic("echo")]), handler: echo).run() }
        }
        let book = AddressBook([key.id52: [first.localAddress, second.localAddress]])
        let dialer = try await QUICEndpoint.bind(
            host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], acceptIncoming: false, configuration: quicConfiguration())
        let pool = PeerPool(endpoint: dialer, resolver: book, configuration: poolConfiguration())
        #expect(try await echoRoundTrip(pool, PeerAddress(key.id52), "one") == "one")
        #expect(try await echoRoundTrip(pool, PeerAddress(key.id52), "two") == "two")
        #expect(await pool.connectionCount == 1)
        // A loser that completed is closed: the dialling socket ends with the winner alone.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while await dialer.connectionCount > 1, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(await dialer.connectionCount == 1)
        await pool.shutdown()
        await dialer.close()
        for acceptor in acceptors { acceptor.cancel() }
        await first.close()
        await second.close()
    }

    @Test func everyAddressDead_failsWithConnectFailed_atTheTimeout() async throws {
        let silent = [try await silentSocket(), try await silentSocket()]
        let id = SecretKey.generate().id52
        let pool = try await makePool(
            poolConfiguration { $0.connectTimeout = .milliseconds(300) }, resolver: AddressBook([id: silent.map { $0.localAddress! }]))
        let error = await #expect(throws: PoolError.self) { try await echoRoundTrip(pool, PeerAddress(id), "x") }
        #expect(error?.code == .connectFailed, "\(String(describing: error))")
        await pool.shutdown()
        for socket in silent { try await socket.close() }
    }
}
