import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import Testing

/// fastn's stream protocol against an independent implementation (aioquic, Python), both ways.
@Suite(.timeLimit(.minutes(3)))
struct StreamProtocolInteropTests {
    @Test func ourPool_againstAioquicAcceptor_echoesPingsAndIsRefused() async throws {
        let identity = SecretKey.generate()
        let python = try await FastnPythonPeer.startServer(identity: identity)
        try await withPool { pool in
            let peer = PeerAddress(identity.id52, at: try SocketAddress(ipAddress: "127.0.0.1", port: python.port))

            #expect(try await echoRoundTrip(pool, peer, "hello aioquic\n") == "hello aioquic\n")
            #expect(try await python.nextStreamLine() == #"STREAM {"Generic":"echo"}"#)
            _ = try await pool.ping(peer)
            #expect(try await python.nextStreamLine() == #"STREAM "Ping""#)
            let error = await #expect(throws: StreamProtocolError.self) {
                _ = try await pool.getStream(ProtocolHeader(.tcp), to: peer)
            }
            #expect(error?.code == .refused)
            // All on one connection.
            #expect(await pool.connectionCount == 1)
        }
    }

    @Test func aioquicOpener_againstOurAcceptor_pingEchoAndGarbage() async throws {
        try await withTestPeer { peer in
            let port = try #require(peer.endpoint.localAddress.port)
            let client = SecretKey.generate()

            let ping = try await FastnPythonPeer.runClient(mode: .ping, port: port, server: peer.key.id52, identity: client)
            #expect(ping.contains("PONG ok"), "\(ping)")

            let echo = try await FastnPythonPeer.runClient(mode: .echo, port: port, server: peer.key.id52, identity: client)
            #expect(echo.contains(#"ECHO "hello fastn\n""#), "\(echo)")

            let garbage = try await FastnPythonPeer.runClient(mode: .garbage, port: port, server: peer.key.id52, identity: client)
            #expect(garbage.contains { $0.hasPrefix("GARBAGE reset=\(ProtocolErrorCode.malformedHeader)") }, "\(garbage)")
            #expect(garbage.contains("AFTER_GARBAGE PONG ok"), "\(garbage)")

            let refused = try await FastnPythonPeer.runClient(
                mode: .echo, port: port, server: peer.key.id52, identity: client, arguments: ["--protocol", #""Http""#])
            #expect(refused.contains { $0.hasPrefix("NOACK \"refused: ") }, "\(refused)")
        }
    }
}
