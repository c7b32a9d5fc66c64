import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

@Suite(.timeLimit(.minutes(3)))
struct ConnectionLifecycleTests {
    @Test func idleConnection_closesAfterIdleTimeout_onBothSides() async throws {
        let idle = testConfiguration { $0.idleTimeout = .milliseconds(800) }
        let clock = ContinuousClock()
        let start = clock.now
        try await ConnectedPair.with(server: idle, client: idle) { pair throws in
            let connection = pair.connection
            let serverSide = pair.serverSide

            #expect(await connection.closed() == .idleTimeout)
            #expect(await serverSide.closed() == .idleTimeout)
            // Never before the idle timeout (measured from before the connection existed).
            #expect(clock.now - start >= .milliseconds(800))
            await #expect(throws: QUICError.self) { _ = try await connection.openStream() }
            #expect(await pair.client.connectionCount == 0)
        }
    }

    @Test func keepAlive_keepsAQuietConnectionOpen() async throws {
        let configuration = testConfiguration {
            $0.idleTimeout = .seconds(3)
            $0.keepAliveInterval = .milliseconds(300)
        }
        try await withEchoConnection(server: configuration, client: configuration) { connection in
            // Three idle timeouts pass in silence; the connection must still carry a stream.
            let ended = Task { await connection.closed() }
            #expect(await completes(Task { _ = await ended.value }, within: .seconds(7)) == false)
            let stream = try await connection.openStream()
            try await stream.write(Array("still here".utf8))
            try await stream.finish()
            #expect(String(buffer: try await stream.readToEnd(limit: 64)) == "still here")
            ended.cancel()
        }
    }

    @Test func keyUpdates_midTransfer_loseNothing() async throws {
        try await withEchoConnection { connection in
            let stream = try await connection.openStream()
            let total = 8 * 1024 * 1024
            async let received: Int = {
                var count = 0
                while let chunk = try await stream.read() {
                    #expect(chunk == patternBuffer(offset: count, count: chunk.readableBytes))
                    count += chunk.readableBytes
                }
                return count
            }()
            var updates = 0
            for offset in stride(from: 0, to: total, by: 256 * 1024) {
                try await stream.write(patternBuffer(offset: offset, count: 256 * 1024))
                // ngtcp2 refuses a new update until the previous one is confirmed; count those that start.
                if (try? await connection.initiateKeyUpdate()) != nil { updates += 1 }
            }
            try await stream.finish()
            #expect(try await received == total)
            #expect(updates >= 2)
        }
    }

    @Test func endpoint_onIPv6Loopback_connects() async throws {
        let serverKey = SecretKey.generate()
        try await withEndpoint(host: "::1", identities: [serverKey]) { server in
            try await withEndpoint(host: "::1", identities: [SecretKey.generate()], acceptIncoming: false) { client in
                let echo = echoServer(server)
                defer { echo.cancel() }
                let connection = try await client.connect(to: serverKey.id52, at: server.localAddress)
                #expect(connection.remoteID52 == serverKey.id52)
                let stream = try await connection.openStream()
                try await stream.write(Array("v6".utf8))
                try await stream.finish()
                #expect(String(buffer: try await stream.readToEnd(limit: 8)) == "v6")
            }
        }
    }

    @Test func endpointClose_failsEveryWaiter_withEndpointClosed() async throws {
        try await withServer { server, keys in
            // Not withClient: closing the client's endpoint (code 5) is what this test does.
            let (client, _) = try await makeClient()
            async let accepted = nextIncoming(server)
            let connection = try await client.connect(to: keys[0].id52, at: server.localAddress)
            let serverSide = try #require(await accepted)
            let stream = try await connection.openStream()
            try await stream.write(Array("x".utf8))
            let reader = Task { try await stream.read() }
            await client.close(code: 5)
            await #expect(throws: QUICError.self) { _ = try await reader.value }
            #expect(await connection.closed() == .endpointClosed)
            #expect(await serverSide.closed() == .peerClosed(applicationCode: 5, reason: "endpoint closed"))
            await #expect(throws: QUICError.self) { _ = try await client.connect(to: keys[0].id52, at: server.localAddress) }
        }
    }

    @Test func bind_toBusyPort_failsWithBindError() async throws {
        try await withServer { server, _ in
            let port = try #require(server.localAddress.port)
            var noReuse = testConfiguration()
            noReuse.socketBufferSize = 65_536
            let error = await #expect(throws: QUICError.self) {
                _ = try await QUICEndpoint.bind(host: "127.0.0.1", port: port, identities: [SecretKey.generate()], configuration: noReuse)
            }
            #expect(error?.code == .bind)
        }
    }
}
