import Foundation
import InMemoryLogging
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PeerpoolIdentity
import PeerpoolRelay
import PeerpoolTestSupport
import Testing

/// The relay client against `iroh_relay.py` (PythonTestRelay), a relay written from the
/// protocol independently of the Swift code, over real loopback sockets.
/// Serialized: each test starts Python relays, and sixteen interpreters starting at once on a
/// 2-core machine missed the relay handshake deadline.
@Suite(.serialized, .timeLimit(.minutes(3))) struct IrohRelayClientTests {
    /// Reconnects quickly, so restart tests finish well inside their deadlines.
    static var fastReconnect: IrohRelayClient.Configuration {
        var configuration = IrohRelayClient.Configuration()
        configuration.connection.initialReconnectDelay = .milliseconds(100)
        configuration.connection.maximumReconnectDelay = .milliseconds(500)
        return configuration
    }

    /// `fastReconnect` with its own keep-alive timing.
    static func pinging(every interval: Duration, pongTimeout: Duration) -> IrohRelayClient.Configuration {
        var configuration = fastReconnect
        configuration.connection.pingInterval = interval
        configuration.connection.pongTimeout = pongTimeout
        return configuration
    }

    struct Endpoint {
        let key: SecretKey
        let client: IrohRelayClient
        let recorder = RelayClientRecorder()
        var id: ID52 { key.id52 }
    }

    func endpoint(
        _ url: String, key: SecretKey = .generate(), configuration: IrohRelayClient.Configuration = IrohRelayClientTests.fastReconnect,
        logger: Logger = IrohRelayClient.silentLogger, connect: Bool = true
    ) async throws -> Endpoint {
        let client = IrohRelayClient(
            url: url, secretKey: key, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            configuration: configuration, logger: logger)
        let endpoint = Endpoint(key: key, client: client)
        endpoint.recorder.attach(to: client)
        client.start()
        if connect { try await client.waitUntilConnected(timeout: .seconds(20)) }
        return endpoint
    }

    func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    @Test func twoClients_exchangeDatagramsAndBatches_bothWays() async throws {
        let relay = try await PythonTestRelay.start()
        let a = try await endpoint(relay.url)
        let b = try await endpoint(relay.url)
        #expect(a.recorder.events.first == .connected(protocolVersion: "iroh-relay-v2"))

        let single = bytes(1200, seed: 1)
        a.client.send(ByteBuffer(bytes: single), segmentSize: nil, to: b.id)
        try await b.recorder.wait(until: "a datagram from a") { b.recorder.bytes(from: a.id) == single }
        #expect(b.recorder.datagrams == [ReceivedDatagrams(source: a.id, bytes: single, segmentSize: nil)])

        // b → a: a batch of five 1200-byte segments and a 700-byte tail, one frame.
        let batch = bytes(5 * 1200 + 700, seed: 2)
        b.client.send(ByteBuffer(bytes: batch), segmentSize: 1200, ecn: 1, to: a.id)
        try await a.recorder.wait(until: "a batch from b") { a.recorder.bytes(from: b.id) == batch }
        #expect(a.recorder.datagrams.map(\.segmentSize) == [1200])

        // a → b: 100 segments of 1400 bytes (140 000 > 64 KiB) arrive as three batch frames.
        let big = bytes(100 * 1400, seed: 3)
        a.client.send(ByteBuffer(bytes: big), segmentSize: 1400, to: b.id)
        try await b.recorder.wait(until: "the big batch from a") { b.recorder.bytes(from: a.id) == single + big }
        let frames = b.recorder.datagrams.dropFirst()
        #expect(frames.count == 3 && frames.allSatisfy { $0.segmentSize == 1400 && $0.bytes.count <= 64 * 1024 })

        #expect(a.client.droppedDatagrams == 0 && b.client.droppedDatagrams == 0)
        await a.client.close()
        await b.client.close()
        #expect(a.recorder.events.last == .closed)
    }

    @Test func httpsRelay_connectsWhenItsCertificateIsTrusted_andFailsTLSOtherwise() async throws {
        let directory = try makePrivateDirectory(prefix: "peerpool-relay-tls")
        defer { try? FileManager.default.removeItem(at: directory) }
        let relay = try await PythonTestRelay.start(arguments: ["--tls-dir", directory.path])
        var configuration = IrohRelayClientTests.fastReconnect
        configuration.tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(directory.appendingPathComponent("cert.pem").path))
        let url = "https://localhost:\(relay.port)"
        let a = try await endpoint(url, configuration: configuration)
        let b = try await endpoint(url, configuration: configuration)
        a.client.send(ByteBuffer(bytes: [4, 5, 6]), segmentSize: nil, to: b.id)
        try await b.recorder.wait(until: "a datagram over TLS") { b.recorder.bytes(from: a.id) == [4, 5, 6] }

        // With the system's trust roots the self-signed certificate is refused.
        let untrusting = try await endpoint(url, connect: false)
        let failure = try await untrusting.recorder.wait(for: "a failed attempt") { untrusting.recorder.failures.first }
        #expect(failure.code == .relayTLSFailed, "\(failure)")
        await #expect(throws: RelayError(.relayTLSFailed, "")) { try await untrusting.client.waitUntilConnected(timeout: .milliseconds(200)) }
        await untrusting.client.close()
        await a.client.close()
        await b.client.close()
    }

    @Test func burstBeyondTheQueue_dropsAndCounts_andTheConnectionCarriesOn() async throws {
        let relay = try await PythonTestRelay.start(arguments: ["--receive-buffer", "65536"])
        // No keep-alive ping within the test: a ping waits behind the backlog the relay drains
        // after it resumes reading, and on a loaded machine that can outlast the pong timeout,
        // reconnect `a` and drop the datagram this test sends after the burst.
        let quiet = IrohRelayClientTests.pinging(every: .seconds(600), pongTimeout: .seconds(60))
        var configuration = quiet
        configuration.maximumQueuedBytes = 256 << 10
        configuration.writeBufferWaterMark = .init(low: 32 << 10, high: 64 << 10)
        let a = try await endpoint(relay.url, configuration: configuration)
        let b = try await endpoint(relay.url, configuration: quiet)
        // 200 frames of 46 × 1400 bytes (12.9 MB) to a relay that stopped reading: beyond the
        // socket buffers and the 256 KiB queue, frames are dropped and counted.
        try await relay.pauseReading()
        let batch = ByteBuffer(bytes: bytes(46 * 1400, seed: 5))
        let peer = b.id
        try await a.client.eventLoop.submit {
            for _ in 0..<200 { a.client.send(batch, segmentSize: 1400, to: peer) }
        }.get()
        let dropped = a.client.droppedDatagrams
        #expect(dropped > 0 && dropped < 200 * 46 && dropped % 46 == 0, "dropped \(dropped)")
        try relay.resumeReading()

        a.client.send(ByteBuffer(bytes: [9, 9]), segmentSize: nil, to: b.id)
        try await b.recorder.wait(until: "the datagram after the burst", within: .seconds(40)) {
            b.recorder.datagrams.last?.bytes == [9, 9]
        }
        let batches = b.recorder.datagrams.dropLast()
        #expect(batches.count <= 200 - dropped / 46 && batches.allSatisfy { $0.bytes == Array(batch.readableBytesView) })
        #expect(a.recorder.failures.isEmpty)
        await a.client.close()
        await b.client.close()
    }

    @Test func v1OnlyRelay_connectsWithV1_andCarriesDatagrams() async throws {
        let relay = try await PythonTestRelay.start(arguments: ["--v1"])
        let a = try await endpoint(relay.url)
        let b = try await endpoint(relay.url)
        #expect(a.recorder.events.first == .connected(protocolVersion: "iroh-relay-v1"))
        #expect(try await relay.value(of: "ACCEPTED").hasSuffix(" v1"))
        b.client.send(ByteBuffer(bytes: [1, 2, 3]), segmentSize: nil, to: a.id)
        try await a.recorder.wait(until: "a datagram over v1") { a.recorder.bytes(from: b.id) == [1, 2, 3] }
        await a.client.close()
        await b.client.close()
    }

    @Test func refusingRelay_failsWaitUntilConnected_withTheRelaysReason() async throws {
        let relay = try await PythonTestRelay.start(arguments: ["--refuse", "not on the guest list"])
        let a = try await endpoint(relay.url, connect: false)
        do {
            try await a.client.waitUntilConnected(timeout: .seconds(20))
            Issue.record("a refused client connected")
        } catch let error as RelayError {
            #expect(error.code == .relayRefused)
            #expect(error.message.contains("not on the guest list"), "\(error)")
        }
        _ = try await relay.value(of: "REFUSED")
        await a.client.close()
    }

    @Test func relayKilledAndRestartedOnTheSamePort_clientsReconnect_andDatagramsFlowAgain() async throws {
        var relay = try await PythonTestRelay.start()
        let port = relay.port
        let a = try await endpoint(relay.url)
        let b = try await endpoint(relay.url)
        a.client.send(ByteBuffer(bytes: [1]), segmentSize: nil, to: b.id)
        try await b.recorder.wait(until: "the first datagram") { b.recorder.bytes(from: a.id) == [1] }

        await relay.kill()
        try await a.recorder.wait(until: "a notices the relay is gone") { !a.recorder.failures.isEmpty }
        try await b.recorder.wait(until: "b notices the relay is gone") { !b.recorder.failures.isEmpty }
        // Sent while disconnected: dropped and counted, like UDP.
        a.client.send(ByteBuffer(bytes: [2]), segmentSize: nil, to: b.id)

        relay = try await PythonTestRelay.start(port: port)
        try await a.recorder.wait(until: "a reconnects") { a.recorder.connections == 2 }
        try await b.recorder.wait(until: "b reconnects") { b.recorder.connections == 2 }
        a.client.send(ByteBuffer(bytes: [3]), segmentSize: nil, to: b.id)
        try await b.recorder.wait(until: "a datagram after the restart") { b.recorder.bytes(from: a.id) == [1, 3] }
        #expect(a.client.droppedDatagrams == 1)
        #expect(a.recorder.failures.first?.code == .relayConnectionLost)

        let closing = Task<Void, any Error> {
            await a.client.close()
            await b.client.close()
        }
        #expect(await completes(closing, within: .seconds(5)))
    }

    @Test func sendingToAnUnknownEndpoint_orOneThatLeft_reportsEndpointGone() async throws {
        let relay = try await PythonTestRelay.start()
        let a = try await endpoint(relay.url)
        let b = try await endpoint(relay.url)
        let stranger = SecretKey.generate().id52
        a.client.send(ByteBuffer(bytes: [1]), segmentSize: nil, to: stranger)
        try await a.recorder.wait(until: "endpoint gone for the stranger") { a.recorder.events.contains(.endpointGone(stranger)) }

        a.client.send(ByteBuffer(bytes: [2]), segmentSize: nil, to: b.id)
        try await b.recorder.wait(until: "b hears from a") { !b.recorder.datagrams.isEmpty }
        await b.client.close()
        try await a.recorder.wait(until: "endpoint gone for b once it left") { a.recorder.events.contains(.endpointGone(b.id)) }
        await a.client.close()
    }

    @Test func sameKeyConnectingTwice_theFirstIsToldItWasReplaced() async throws {
        let relay = try await PythonTestRelay.start()
        let key = SecretKey.generate()
        let first = try await endpoint(relay.url, key: key)
        let second = try await endpoint(relay.url, key: key)
        try await first.recorder.wait(until: "a status") { first.recorder.events.contains(.status(.sameEndpointIdConnected)) }
        await first.client.close()
        await second.client.close()
    }

    @Test func restartAnnounced_clientReconnectsWhenTold() async throws {
        let relay = try await PythonTestRelay.start()
        let a = try await endpoint(relay.url)
        try relay.announceRestart(reconnectInMilliseconds: 200, tryForMilliseconds: 5000)
        try await a.recorder.wait(until: "the restart event") {
            a.recorder.events.contains(.restarting(reconnectIn: .milliseconds(200), tryFor: .seconds(5)))
        }
        try await a.recorder.wait(until: "the reconnect") { a.recorder.connections == 2 }
        #expect(a.recorder.failures.map(\.code) == [.relayRestarting])
        await a.client.close()
    }

    @Test func garbageFromTheRelay_dropsTheConnectionWithALoggedError_andReconnects() async throws {
        let relay = try await PythonTestRelay.start(arguments: ["--garbage-once"])
        let logs = InMemoryLogHandler()
        let a = try await endpoint(relay.url, logger: Logger(label: "relay-test") { _ in logs })
        _ = try await relay.value(of: "GARBAGE")
        try await a.recorder.wait(until: "the reconnect after garbage") { a.recorder.connections == 2 }
        #expect(a.recorder.failures.map(\.code) == [.relayFrameMalformed])
        let logged = logs.entries.filter { $0.metadata["relay.error.code"] == "relay_frame_malformed" }
        #expect(logged.count == 1, "\(logs.entries)")

        let b = try await endpoint(relay.url)
        b.client.send(ByteBuffer(bytes: [7]), segmentSize: nil, to: a.id)
        try await a.recorder.wait(until: "a datagram after the reconnect") { a.recorder.bytes(from: b.id) == [7] }
        await a.client.close()
        await b.client.close()
    }

    @Test func unansweredPings_countAsADeadConnection_andTheClientReconnects() async throws {
        let relay = try await PythonTestRelay.start(arguments: ["--no-pong"])
        let a = try await endpoint(relay.url, configuration: Self.pinging(every: .milliseconds(200), pongTimeout: .milliseconds(300)))
        try await a.recorder.wait(until: "a ping timeout") { !a.recorder.failures.isEmpty }
        #expect(a.recorder.failures.first?.code == .relayPingTimeout)
        try await a.recorder.wait(until: "the reconnect") { a.recorder.connections >= 2 }
        await a.client.close()
    }

    @Test func answeredPings_keepTheConnection() async throws {
        let relay = try await PythonTestRelay.start(arguments: ["--log-pings"])
        // A generous pong timeout: a loaded machine may stall the Python relay for seconds.
        let a = try await endpoint(relay.url, configuration: Self.pinging(every: .milliseconds(100), pongTimeout: .seconds(30)))
        let key = a.id.publicKeyBytes.map { String(format: "%02x", $0) }.joined()
        // A new ping goes out only once the last one was answered: five answered pings mean
        // five pongs arrived and matched.
        for _ in 1...5 {
            #expect(try await relay.value(of: "PING") == key)
        }
        #expect(a.recorder.failures.isEmpty && a.recorder.connections == 1, "\(a.recorder.events)")
        await a.client.close()
    }

    @Test func close_whileTheHandshakeHangs_returnsPromptly_andFailsWaiters() async throws {
        // A server that accepts TCP and never answers the upgrade.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(silent.localAddress?.port)
        let a = try await endpoint("http://127.0.0.1:\(port)", connect: false)
        await #expect(throws: RelayError(.relayHandshakeTimeout, "")) { try await a.client.waitUntilConnected(timeout: .milliseconds(300)) }

        let waiting = Task { try await a.client.waitUntilConnected(timeout: .seconds(30)) }
        let closing = Task<Void, any Error> { await a.client.close() }
        #expect(await completes(closing, within: .seconds(5)))
        await #expect(throws: RelayError(.relayClosed, "")) { try await waiting.value }
        await a.client.close()  // idempotent
        try await silent.close()
    }

    @Test func close_whileReconnectingToADeadRelay_returnsPromptly() async throws {
        let relay = try await PythonTestRelay.start()
        let url = relay.url
        await relay.kill()
        let a = try await endpoint(url, connect: false)
        try await a.recorder.wait(until: "two failed attempts") { a.recorder.failures.count >= 2 }
        #expect(a.recorder.failures.allSatisfy { $0.code == .relayUnreachable })
        await #expect(throws: RelayError(.relayUnreachable, "")) { try await a.client.waitUntilConnected(timeout: .milliseconds(200)) }
        let closing = Task<Void, any Error> { await a.client.close() }
        #expect(await completes(closing, within: .seconds(5)))
        let failures = a.recorder.failures.count
        try await Task.sleep(for: .seconds(1))  // long enough for two more attempts, had it not stopped
        #expect(a.recorder.failures.count == failures)
    }

    @Test func invalidURL_isReportedByWaitUntilConnected() async throws {
        let a = try await endpoint("ftp://relay.example", connect: false)
        await #expect(throws: RelayError(.invalidRelayURL, "")) { try await a.client.waitUntilConnected(timeout: .seconds(5)) }
        a.client.send(ByteBuffer(bytes: [1]), segmentSize: nil, to: a.id)
        await a.client.close()
        #expect(a.client.droppedDatagrams == 1)
    }

    @Test func probe_timesGetPing_andFailsOnADeadRelay() async throws {
        let relay = try await PythonTestRelay.start()
        let elapsed = try await IrohRelayClient.probe(url: relay.url)
        #expect(elapsed > .zero && elapsed < .seconds(5))
        await relay.kill()
        await #expect(throws: RelayError(.relayProbeFailed, "")) { _ = try await IrohRelayClient.probe(url: relay.url, timeout: .seconds(1)) }
    }
}
