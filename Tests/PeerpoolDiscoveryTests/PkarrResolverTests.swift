import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

@testable import PeerpoolDiscovery

/// `PkarrResolver` against `Interop/pkarr_relay.py`: a record is found by GET and verified, a
/// missing one is an empty answer, a forged one is refused, and answers live for their TTL.
@Suite(.timeLimit(.minutes(3))) struct PkarrResolverTests {
    static func publish(_ key: SecretKey, _ record: IrohEndpointRecord, ttl: UInt32 = 30, to server: PythonTestServer) async throws {
        let packet = try PkarrSignedPacket(signing: record, as: key, timestamp: 1_000_000, ttl: ttl)
        try await PkarrPublisherTests.relay(server).put(packet)
    }

    @Test func lookup_findsThePublishedRecord_withItsTTL() async throws {
        let server = try await PythonTestServer(script: "pkarr_relay.py")
        let key = SecretKey.generate()
        let record = try PkarrPublisherTests.record(key, port: 4433)
        try await Self.publish(key, record, ttl: 45, to: server)
        let result = try await PkarrResolver(relay: try PkarrPublisherTests.relay(server)).lookup(key.id52)
        #expect(result.record == record)
        #expect(result.ttl == .seconds(45))
        #expect(!result.notFound)
        #expect(result.summary.contains("addr=127.0.0.1:4433"), "\(result.summary)")
    }

    @Test func lookup_ofAPeerWithoutAPacket_isAnEmptyAnswer() async throws {
        let server = try await PythonTestServer(script: "pkarr_relay.py")
        let peer = SecretKey.generate().id52
        let result = try await PkarrResolver(relay: try PkarrPublisherTests.relay(server)).lookup(peer)
        #expect(result.notFound && result.record.isEmpty)
        #expect(result.summary.contains("no packet (404)"), "\(result.summary)")
    }

    @Test func lookup_ofAPacketSignedByAnotherKey_isRefused() async throws {
        let victim = SecretKey.generate().id52
        let server = try await PythonTestServer(script: "pkarr_relay.py", arguments: ["--forged", ZBase32.encode(victim)])
        let error = await #expect(throws: DiscoveryError.self) {
            try await PkarrResolver(relay: try PkarrPublisherTests.relay(server)).lookup(victim)
        }
        #expect(error?.code == .pkarrBadSignature, "\(String(describing: error))")
    }

    /// The cached answer outlives the relay until its TTL runs out on the manual clock; then the
    /// resolver asks again, and the stopped relay's failure comes through.
    @Test func answers_areCachedForTheirTTL_thenAskedAgain() async throws {
        let clock = ManualClock()
        var server: PythonTestServer? = try await PythonTestServer(script: "pkarr_relay.py")
        let key = SecretKey.generate()
        let record = try PkarrPublisherTests.record(key, port: 1)
        try await Self.publish(key, record, ttl: 30, to: server!)
        let resolver = PkarrResolver(relay: try PkarrPublisherTests.relay(server!), now: clock.now)
        #expect(try await resolver.lookup(key.id52).record == record)
        server = nil  // stopped: only the cache can answer now
        clock.advance(by: .seconds(29))
        #expect(try await resolver.lookup(key.id52).record == record)
        clock.advance(by: .seconds(2))
        let error = await #expect(throws: DiscoveryError.self) { try await resolver.lookup(key.id52) }
        #expect(error?.code == .pkarrRelayFailed, "\(String(describing: error))")
        #expect(await resolver.cachedCount == 1)
    }
}
