import NIOCore
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolTestSupport
import Testing

/// Reaching a peer by its ID52 alone: the pool asks an address book, then iroh's DNS discovery
/// (a dnslib server on loopback standing in for dns.iroh.link).
@Suite(.timeLimit(.minutes(3)))
struct DiscoveryResolverTests {
    static let origin = "dns.test.invalid"

    static func dns(_ server: PythonTestServer) throws -> DNSAddressResolver {
        var configuration = DNSDiscoveryConfiguration(origin: origin, nameServers: [try SocketAddress(ipAddress: "127.0.0.1", port: server.port)])
        configuration.queryTimeout = .seconds(20)   // a Python server on a loaded machine can be slow
        return DNSAddressResolver(try IrohDNSResolver(configuration: configuration))
    }

    static func name(_ peer: ID52) -> String { IrohEndpointRecord.name(of: peer, origin: origin) }

    @Test func getStream_byID52Alone_findsThePeerThroughDNS() async throws {
        try await withTestPeer { peer in
            let port = try #require(peer.endpoint.localAddress.port)
            let server = try await PythonTestServer(dnsZone: [Self.name(peer.key.id52): [[30, "relay=http://127.0.0.1:9/"], [30, "addr=127.0.0.1:\(port)"]]])
            try await withPool(resolver: ChainedResolver([AddressBook(), try Self.dns(server)])) { pool throws in
                #expect(try await echoRoundTrip(pool, PeerAddress(peer.key.id52), "found by DNS") == "found by DNS")
            }
        }
    }

    @Test func chain_asksTheAddressBookFirst_andDNSOnlyWhenItHasNothing() async throws {
        let (booked, other) = (SecretKey.generate().id52, SecretKey.generate().id52)
        let server = try await PythonTestServer(dnsZone: [Self.name(booked): [[30, "addr=127.0.0.1:2"]], Self.name(other): [[30, "addr=127.0.0.1:3"]]])
        let book = AddressBook([booked: [try SocketAddress(ipAddress: "127.0.0.1", port: 1)]])
        let chain = ChainedResolver([book, try Self.dns(server)])
        #expect(try await chain.addresses(of: booked) == [try SocketAddress(ipAddress: "127.0.0.1", port: 1)])
        #expect(try await chain.addresses(of: other) == [try SocketAddress(ipAddress: "127.0.0.1", port: 3)])
        // The first query the server saw is `other`'s: `booked` never reached DNS.
        #expect(await server.nextLine() == "QUERY \(Self.name(other))")
    }

    @Test func peerWithOnlyARelay_failsWithNoAddress_namingWhatDNSSaid() async throws {
        let (relayOnly, unknown) = (SecretKey.generate().id52, SecretKey.generate().id52)
        let server = try await PythonTestServer(dnsZone: [Self.name(relayOnly): [[30, "relay=https://relay.test.invalid/"]]])
        try await withPool(resolver: ChainedResolver([AddressBook(), try Self.dns(server)])) { pool in
            let error = await #expect(throws: PoolError.self) { _ = try await pool.getStream(ProtocolHeader(.ping), to: PeerAddress(relayOnly)) }
            #expect(error?.code == .noAddress)
            #expect(error?.message.contains("relay=https://relay.test.invalid/") == true, "\(String(describing: error))")
            #expect(error?.message.contains("only through its relay") == true, "\(String(describing: error))")

            let missing = await #expect(throws: PoolError.self) { _ = try await pool.getStream(ProtocolHeader(.ping), to: PeerAddress(unknown)) }
            #expect(missing?.code == .noAddress)
            #expect(missing?.message.contains("NXDOMAIN") == true, "\(String(describing: missing))")
        }
    }

    @Test func malformedRecord_failsWithDiscoveryFailed() async throws {
        let peer = SecretKey.generate().id52
        let server = try await PythonTestServer(dnsZone: [Self.name(peer): [[30, "addr=nonsense"]]])
        let error = await #expect(throws: PoolError.self) { _ = try await ChainedResolver([try Self.dns(server)]).addresses(of: peer) }
        #expect(error?.code == .discoveryFailed)
        #expect(error?.message.contains("bad_iroh_record") == true, "\(String(describing: error))")
    }
}
