import Logging
import Metrics
import MetricsTestKit
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import ServiceLifecycle
import Testing

@Suite(.timeLimit(.minutes(2)))
struct AcceptorTests {
    /// Runs `body` with a raw QUIC connection to a TestPeer, for sending what the pool would never
    /// send; its dial-only endpoint is closed afterwards, awaited, whether `body` returned or threw.
    private func withRawConnection<T>(to peer: TestPeer, _ body: (QUICConnection) async throws -> T) async throws -> T {
        try await withEndpoint(acceptIncoming: false) { endpoint in
            try await body(try await endpoint.connect(to: peer.key.id52, at: peer.endpoint.localAddress))
        }
    }

    private func expectReset(_ stream: QUICStream, code: UInt64) async {
        let error = await #expect(throws: QUICError.self) { while try await stream.read() != nil {} }
        #expect(error?.code == .streamReset)
        #expect(error?.message.contains("code \(code)") == true, "\(String(describing: error))")
    }

    @Test func oversizeHeader_resetsTheStream_andTheConnectionLivesOn() async throws {
        try await withTestPeer { peer in
            try await withRawConnection(to: peer) { connection in
                let stream = try await connection.openStream()
                // 70 KiB of header without a newline.
                try await stream.write(ByteBuffer(repeating: UInt8(ascii: "a"), count: 70 * 1024))
                await expectReset(stream, code: ProtocolErrorCode.headerTooLong)
                try await expectPingWorks(on: connection)
            }
        }
    }

    @Test(arguments: ["{not json\n", "\"NoSuchProtocol\"\n", "[1,2]\n"])
    func garbageHeader_resetsTheStream_andTheConnectionLivesOn(_ garbage: String) async throws {
        try await withTestPeer { peer in
            try await withRawConnection(to: peer) { connection in
                let stream = try await connection.openStream()
                try await stream.write(Array(garbage.utf8))
                await expectReset(stream, code: ProtocolErrorCode.malformedHeader)
                try await expectPingWorks(on: connection)
            }
        }
    }

    @Test func invalidUTF8Header_resetsTheStream() async throws {
        try await withTestPeer { peer in
            try await withRawConnection(to: peer) { connection in
                let stream = try await connection.openStream()
                try await stream.write([0x22, 0xff, 0xfe, 0x22, 0x0a])
                await expectReset(stream, code: ProtocolErrorCode.malformedHeader)
            }
        }
    }

    @Test func ping_isAnsweredAckPong_thenEnd() async throws {
        try await withTestPeer { peer in
            try await withRawConnection(to: peer) { connection in
                try await expectPingWorks(on: connection)
            }
        }
    }

    private func expectPingWorks(on connection: QUICConnection) async throws {
        let stream = try await connection.openStream()
        try await stream.write(Array("\"Ping\"\n".utf8))
        try await stream.finish()
        #expect(String(buffer: try await stream.readToEnd(limit: 64)) == "ack\npong\n")
    }

    @Test func gracefulShutdown_closesConnectionsWithTheCloseCode_andRefusesNewRequests() async throws {
        try await withTestPeer { peer in
            // Not withPool: shutting the pool down, through its service group, is what this test does.
            let pool = try await makePool()
            #expect(try await echoRoundTrip(pool, peer.address, "before") == "before")
            #expect(await peer.endpoint.connectionCount == 1)

            let group = ServiceGroup(configuration: .init(services: [pool], logger: Logger(label: "test")))
            let running = Task { try await group.run() }
            await group.triggerGracefulShutdown()
            try await running.value
            let error = await #expect(throws: PoolError.self) { _ = try await echoRoundTrip(pool, peer.address, "after") }
            #expect(error?.code == .shutDown)
            #expect(await pool.connectionCount == 0)
            // The peer hears the close (code 0) and drops its side.
            for _ in 0..<100_000 where await peer.endpoint.connectionCount > 0 { await Task.yield() }
            #expect(await peer.endpoint.connectionCount == 0)
        }
    }

    @Test func poolShutdown_letsInFlightWorkFinish_withinTheGracePeriod() async throws {
        // A peer that acknowledges only when the test says so.
        let (release, releaser) = AsyncStream<Void>.makeStream()
        try await withRawPeer(handle: { stream in
            _ = try? await stream.read()
            for await _ in release { break }
            try? await stream.write(Array("ack\n".utf8))
            try? await stream.finish()
            _ = try? await stream.readToEnd(limit: 64)
        }) { rawPeer in
            let pool = try await makePool()
            let peer = rawPeer.address
            // The request, and then the work on its stream, are in flight when shutdown starts.
            let request = Task {
                let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
                try await stream.finish()
            }
            for _ in 0..<100_000 where await pool.requestsInFlight == 0 { await Task.yield() }
            #expect(await pool.requestsInFlight == 1)

            let shutdown = Task { await pool.shutdown(gracePeriod: .seconds(20)) }
            // Shutdown waits for that work...
            #expect(await completes(Task { await shutdown.value }, within: .milliseconds(300)) == false)
            releaser.yield()
            // ...which completes, and then shutdown ends long before its grace period.
            try await request.value
            #expect(await completes(Task { await shutdown.value }, within: .seconds(10)))
            let error = await #expect(throws: PoolError.self) { _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer) }
            #expect(error?.code == .shutDown)
        }
    }

    @Test func acceptorGracefulShutdown_letsRunningHandlersFinish_thenClosesTheEndpoint() async throws {
        let key = SecretKey.generate()
        try await withEndpoint(identities: [key]) { endpoint in
            var configuration = AcceptorConfiguration(protocols: [.generic("echo")])
            configuration.gracePeriod = .seconds(10)
            configuration.closeCode = 9
            let acceptor = StreamAcceptor(endpoint: endpoint, configuration: configuration, handler: echo)
            let group = ServiceGroup(configuration: .init(services: [acceptor], logger: Logger(label: "test")))
            let running = Task { try await group.run() }
            try await withPool { pool in
                let peer = PeerAddress(key.id52, at: endpoint.localAddress)

                // A handler is running (echo stream open) when shutdown starts...
                let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
                try await stream.write(Array("in flight".utf8))
                #expect(try await stream.read().map { String(buffer: $0) } == "in flight")
                await group.triggerGracefulShutdown()
                // ...and may finish its work.
                try await stream.write(Array(" and done".utf8))
                try await stream.finish()
                #expect(String(buffer: try await stream.readToEnd(limit: 100)) == " and done")
                // Then the endpoint closes with the close code, and run() returns.
                #expect(await completes(running, within: .seconds(15)))
                try await running.value
                #expect(await endpoint.connectionCount == 0)
            }
        }
    }

    @Test func metrics_countConnectsStreamsAndFailures() async throws {
        let metrics = TestMetrics()
        try await withTestPeer { peer in
            try await withPool(metrics: metrics) { pool in
                for i in 0..<3 { _ = try await echoRoundTrip(pool, peer.address, "\(i)") }
                _ = try? await pool.getStream(ProtocolHeader(.tcp), to: peer.address)
                #expect(try metrics.expectCounter("peerpool.connects").totalValue == 1)
                #expect(try metrics.expectCounter("peerpool.streams.opened").totalValue == 3)
                #expect(try metrics.expectTimer("peerpool.getstream.duration").values.count == 3)
            }
        }
    }
}
