import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

/// A request with an address the pool's socket cannot send to fails alone, naming the address;
/// the pool and its other peers carry on.
@Suite(.timeLimit(.minutes(3)))
struct PoolAddressTests {
    @Test(arguments: ["[::1]:4433", "[::ffff:255.255.255.255]:1", "255.255.255.255:1", "224.0.0.251:5353"])
    func unsendableAddress_failsThatRequest_withAddressUnreachable(_ hostPort: String) async throws {
        try await withTestPeer { peer in
            try await withPool { pool in
                #expect(try await echoRoundTrip(pool, peer.address, "before") == "before")

                let stranger = try PeerAddress(parsing: "\(SecretKey.generate().id52)@\(hostPort)")
                let error = await #expect(throws: PoolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: stranger)
                }
                #expect(error?.code == .addressUnreachable, "\(String(describing: error))")
                #expect(error?.message.contains("cannot send to") == true, "\(String(describing: error))")

                // The established connection and new ones both still work.
                #expect(try await echoRoundTrip(pool, peer.address, "after") == "after")
                try await withTestPeer { other throws in
                    #expect(try await echoRoundTrip(pool, other.address, "new peer") == "new peer")
                }
            }
        }
    }
}
