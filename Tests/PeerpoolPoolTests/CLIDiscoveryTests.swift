import Foundation
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

/// `peerpool ping ID52 --dns-origin …`: a peer named by its ID52 alone, found through a DNS
/// server on loopback, as a user runs it.
@Suite(.timeLimit(.minutes(1)))
struct CLIDiscoveryTests {
    static let origin = "dns.test.invalid"

    @Test func ping_byID52Alone_withDNSOrigin_getsAPong() async throws {
        let listener = try await CLIProcess.Listener()
        let id = listener.identities[0]
        let dns = try await PythonTestServer(dnsZone: [
            IrohEndpointRecord.name(of: id, origin: Self.origin): [[30, "addr=\(listener.host):\(listener.port)"]],
        ])
        let result = try await CLIProcess.run(["ping", "\(id)", "--dns-origin", Self.origin, "--dns-server", "127.0.0.1:\(dns.port)"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("pong from \(id): "), "\(result)")
    }

    @Test func ping_ofARelayOnlyPeer_failsNamingWhatDNSSaid() async throws {
        let id = SecretKey.generate().id52
        let dns = try await PythonTestServer(dnsZone: [
            IrohEndpointRecord.name(of: id, origin: Self.origin): [[30, "relay=https://relay.test.invalid/"]],
        ])
        let result = try await CLIProcess.run(["ping", "\(id)", "--dns-origin", Self.origin, "--dns-server", "127.0.0.1:\(dns.port)"])
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("no_address") && result.stderr.contains("relay=https://relay.test.invalid/"), "\(result)")
    }

    @Test func ping_byID52Alone_withoutDNSOrigin_stillFailsWithNoAddress() async throws {
        let result = try await CLIProcess.run(["ping", "\(SecretKey.generate().id52)"])
        #expect(result.status != 0 && result.stderr.contains("no_address"), "\(result)")
    }
}
