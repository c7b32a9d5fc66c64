import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

@testable import PeerpoolDiscovery

/// Against `Interop/pkarr_relay.py`, a pkarr relay on loopback that verifies every packet with
/// Python's cryptography before storing it and reports each PUT it accepted.
@Suite(.timeLimit(.minutes(3))) struct PkarrPublisherTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func relay(_ server: PythonTestServer) throws -> PkarrRelayClient {
        try PkarrRelayClient(relayURL: "http://127.0.0.1:\(server.port)/pkarr/")
    }

    static func record(_ key: SecretKey, port: Int) throws -> IrohEndpointRecord {
        IrohEndpointRecord(peer: key.id52, addresses: [try SocketAddress(ipAddress: "127.0.0.1", port: port)],
                           relayURLs: ["http://127.0.0.1:3340/"])
    }

    @Test func publishNow_isAcceptedByTheRelay_andReadsBackVerified() async throws {
        let server = try await PythonTestServer(script: "pkarr_relay.py")
        let key = SecretKey.generate()
        let publisher = PkarrPublisher(secretKey: key, record: try Self.record(key, port: 4433), relay: try Self.relay(server),
                                       logger: Self.logger)
        let packet = try await publisher.publishNow()
        #expect(await server.nextLine() == "PUT \(ZBase32.encode(key.id52)) \(packet.timestamp) relay=http://127.0.0.1:3340/,addr=127.0.0.1:4433")

        let fetched = try #require(try await Self.relay(server).get(key.id52))
        #expect(fetched == packet)
        #expect(try fetched.irohRecord().record == Self.record(key, port: 4433))
        #expect(try await Self.relay(server).get(SecretKey.generate().id52) == nil)
    }

    @Test func run_publishesAtStart_atOnceOnChange_andEveryInterval() async throws {
        let server = try await PythonTestServer(script: "pkarr_relay.py")
        let key = SecretKey.generate()
        var configuration = PkarrPublisher.Configuration()
        configuration.republishInterval = .seconds(3600)
        let publisher = PkarrPublisher(secretKey: key, record: try Self.record(key, port: 1), relay: try Self.relay(server),
                                       configuration: configuration, logger: Self.logger)
        let running = Task { try await publisher.run() }
        defer { running.cancel() }
        #expect(await server.nextLine()?.hasSuffix("addr=127.0.0.1:1") == true)
        // Within the hour-long interval, only a change can cause the second PUT.
        await publisher.update(try Self.record(key, port: 2))
        #expect(await server.nextLine()?.hasSuffix("addr=127.0.0.1:2") == true)
        await publisher.update(try Self.record(key, port: 2))   // unchanged: no PUT

        // A short interval republishes by itself; the unchanged update above added no PUT
        // in between (the relay would have reported it first).
        var fast = PkarrPublisher.Configuration()
        fast.republishInterval = .milliseconds(200)
        let other = SecretKey.generate()
        let repeating = PkarrPublisher(secretKey: other, record: try Self.record(other, port: 3), relay: try Self.relay(server),
                                       configuration: fast, logger: Self.logger)
        let runningFast = Task { try await repeating.run() }
        defer { runningFast.cancel() }
        var timestamps: [UInt64] = []
        for _ in 0..<3 {
            let line = try #require(await server.nextLine())
            #expect(line.hasPrefix("PUT \(ZBase32.encode(other.id52)) "), "\(line)")
            timestamps.append(try #require(UInt64(line.split(separator: " ")[2])))
        }
        #expect(timestamps == timestamps.sorted() && Set(timestamps).count == 3)
    }

    @Test func relayRefusal_isReportedWithItsStatus() async throws {
        let server = try await PythonTestServer(script: "pkarr_relay.py", arguments: ["--refuse", "429"])
        let key = SecretKey.generate()
        let publisher = PkarrPublisher(secretKey: key, record: try Self.record(key, port: 1), relay: try Self.relay(server),
                                       logger: Self.logger)
        let error = await #expect(throws: DiscoveryError.self) { try await publisher.publishNow() }
        #expect(error?.code == .pkarrRelayRefused)
        #expect(error?.message.contains("429") == true, "\(String(describing: error))")
    }

    @Test func get_ofAPacketSignedByAnotherKey_isRefused() async throws {
        let victim = SecretKey.generate().id52
        let server = try await PythonTestServer(script: "pkarr_relay.py", arguments: ["--forged", ZBase32.encode(victim)])
        await #expect(throws: DiscoveryError(.pkarrBadSignature, "")) { try await Self.relay(server).get(victim) }
    }

    @Test func unreachableRelay_failsWithRelayFailed() async throws {
        // A port nothing listens on: bind, read the port, close.
        let server = try await PythonTestServer(script: "pkarr_relay.py")
        let port = server.port
        _ = consume server
        let relay = try PkarrRelayClient(relayURL: "http://127.0.0.1:\(port)", timeout: .seconds(5))
        await #expect(throws: DiscoveryError(.pkarrRelayFailed, "")) { try await relay.get(SecretKey.generate().id52) }
    }
}
