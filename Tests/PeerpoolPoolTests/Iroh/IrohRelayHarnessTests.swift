import Foundation
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

/// The harness for end-to-end tests through an iroh relay, proved with iroh on both sides:
/// `Scripts/iroh_relay.py` (a relay written from the protocol) as home relay, UDP blocked with
/// nftables (to and from the server's ports) so QUIC can only go through the relay's WebSocket, and iroh's DNS address lookup
/// answered by `pkarr_relay.py --dns-port 53` from a record the test signed with the server's key.
///
/// Runs only inside the namespace `IrohNamespaceTests` sets up for it: loopback only, and a
/// resolv.conf naming 127.0.0.1 bind-mounted over /etc/resolv.conf. Serialized, nested suites
/// included (`IrohRelayHarnessTests.Peerpool`): the UDP block and port 53 belong to the whole
/// namespace.
@Suite(
    .enabled(if: LoopbackNamespace.requested, "runs inside IrohNamespaceTests' loopback-only network namespace"),
    .serialized, .timeLimit(.minutes(3)))
struct IrohRelayHarnessTests {
    static let echoBytes = 8 * 1024 * 1024

    @Test func udpBlocked_irohDialsIrohByAddress_fails() async throws {
        let server = try await IrohPeer.startServer()
        let run = try await LoopbackNamespace.withUDPBlocked(ports: server.udpPorts) {
            try await IrohPeer.runClient(peer: server.id52, dialling: .address(port: server.port), ["--mode", "ping"], within: .seconds(8))
        }
        #expect(run.status != 0, "\(run.transcript)")
        #expect(!run.lines.contains("PONG ok"), "\(run.transcript)")
        // And with the rules gone the same dial works: it was the block.
        let open = try await IrohPeer.runClient(peer: server.id52, dialling: .address(port: server.port), ["--mode", "ping"])
        #expect(open.lines.contains("PONG ok"), "\(open.transcript)")
    }

    @Test func udpBlocked_irohDialsIrohByIDAndRelayURL_pingAndEcho8MiBGoThroughTheRelay() async throws {
        let relay = try await PythonTestRelay.start()
        let server = try await IrohPeer.startServer(relay: relay.url)
        #expect(server.relayURL?.hasPrefix(relay.url) == true, "\(server.transcript)")
        let (ping, echo) = try await LoopbackNamespace.withUDPBlocked(ports: server.udpPorts) {
            let ping = try await IrohPeer.runClient(peer: server.id52, dialling: .relay(relay.url), ["--mode", "ping", "--count", "3"])
            let echo = try await IrohPeer.runClient(
                peer: server.id52, dialling: .relay(relay.url), ["--mode", "echo", "--bytes", "\(Self.echoBytes)"], within: .seconds(120))
            return (ping, echo)
        }
        #expect(ping.status == 0, "\(ping.transcript)")
        #expect(ping.lines.filter { $0 == "PONG ok" }.count == 3, "\(ping.transcript)")
        #expect(echo.lines.contains { $0.hasPrefix("ECHO ok \(Self.echoBytes) ") }, "\(echo.transcript)")
        let stats = try await relay.stats()
        // Both directions of the 8 MiB crossed the relay, QUIC overhead on top.
        #expect(stats.forwardedBytes > 2 * Self.echoBytes, "\(stats)")
        print("iroh relay, iroh to iroh with UDP blocked: \(stats); \(echo.lines.filter { $0.hasPrefix("ECHO") })")
    }

    @Test func udpBlocked_irohDialsIrohByIDAlone_foundThroughDNS_reachedThroughTheRelay() async throws {
        try LoopbackNamespace.requireLocalResolver()
        let relay = try await PythonTestRelay.start()
        let (server, dns) = try await Self.irohServerFoundThroughDNS(relay: relay)

        let run = try await LoopbackNamespace.withUDPBlocked(ports: server.udpPorts) {
            try await IrohPeer.runClient(peer: server.id52, dialling: .dns(homeRelay: relay.url), ["--mode", "ping"])
        }
        #expect(run.status == 0, "\(run.transcript)")
        #expect(run.lines.contains("PONG ok"), "\(run.transcript)")
        let answered = try await dns.query(for: server.id52)
        #expect(answered.contains("relay=\(relay.url)"), "\(answered)")
        #expect(try await relay.stats().forwarded > 0)
    }
}

extension IrohRelayHarnessTests {
    /// An iroh server homed on `relay` whose record the DNS server inside the namespace serves:
    /// what iroh 1.x publishes for itself, its home relay only, signed by the test with the
    /// server's key.
    static func irohServerFoundThroughDNS(relay: PythonTestRelay) async throws -> (IrohPeer, IrohRecordServer) {
        let secret = SecretKey.generate()
        let server = try await IrohPeer.startServer(secret: secret, relay: relay.url)
        let dns = try await IrohRecordServer.start()
        try await dns.publish(IrohEndpointRecord(peer: secret.id52, relayURLs: [try #require(server.relayURL)]), as: secret)
        return (server, dns)
    }
}

/// `pkarr_relay.py --dns-port 53`: a pkarr relay on 127.0.0.1 (HTTP, any port) that also answers
/// iroh's `TXT _iroh.<z32>.dns.iroh.link` on 127.0.0.1:53 from the packets PUT to it. Port 53
/// because resolv.conf cannot name a port; only inside the namespace (`requireLocalResolver`).
struct IrohRecordServer {
    let server: PythonTestServer
    var url: String { "http://127.0.0.1:\(server.port)" }

    static func start() async throws -> IrohRecordServer {
        try LoopbackNamespace.requireInside()
        try LoopbackNamespace.requireLocalResolver()
        return IrohRecordServer(server: try await PythonTestServer(script: "pkarr_relay.py", arguments: ["--dns-port", "53"]))
    }

    /// PUTs `record` signed with `secret` (the test holds the iroh peer's key: iroh's own
    /// publisher cannot be pointed here) and waits for the server's `PUT` line.
    func publish(_ record: IrohEndpointRecord, as secret: SecretKey) async throws {
        let timestamp = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        try await PkarrRelayClient(relayURL: url).put(try PkarrSignedPacket(signing: record, as: secret, timestamp: timestamp))
        _ = try await line(startingWith: "PUT \(ZBase32.encode(secret.id52)) ")
    }

    /// The answer (`value,value` or `-`) of the next DNS query for `peer`'s record.
    func query(for peer: ID52) async throws -> String {
        let prefix = "QUERY _iroh.\(ZBase32.encode(peer)).dns.iroh.link "
        return String(try await line(startingWith: prefix).dropFirst(prefix.count))
    }

    /// The next line starting with `prefix`; throws if the server's line stream ends first (it
    /// exits, or its deadline passes).
    func line(startingWith prefix: String) async throws -> String {
        guard let line = await server.nextLine(matching: { $0.hasPrefix(prefix) }) else {
            throw IrohPeerError("pkarr_relay.py printed no line starting with \(prefix)")
        }
        return line
    }
}
