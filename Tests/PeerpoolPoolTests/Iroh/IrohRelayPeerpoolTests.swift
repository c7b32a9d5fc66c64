import Foundation
import NIOCore
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

extension IrohRelayHarnessTests {
    /// peerpool and a real iroh endpoint finding each other by ID52 alone and talking through an
    /// iroh relay (`Scripts/iroh_relay.py`), on the harness `IrohRelayHarnessTests` proves with
    /// iroh on both sides. Nested in it so its serialization covers these too.
    @Suite
    struct Peerpool {
        // MARK: (i) peerpool dials iroh by ID52 alone, through the relay

        @Test func udpBlocked_peerpoolDialsIrohByID52Alone_throughTheRelay_pingAndEcho8MiB() async throws {
            let relay = try await PythonTestRelay.start()
            let (iroh, dns) = try await IrohRelayHarnessTests.irohServerFoundThroughDNS(relay: relay)

            try await LoopbackNamespace.withUDPBlocked(ports: iroh.udpPorts) {
                // The command line: DNS discovery through /etc/resolv.conf (127.0.0.1:53 here),
                // then pkarr straight from the relay.
                for discovery in [["--dns-origin", "dns.iroh.link"], ["--pkarr-relay", dns.url]] {
                    let output = try await TestChild.runPeerpool(["ping", "\(iroh.id52)", "--count", "3"] + discovery, within: .seconds(60))
                    #expect(output.status == 0, "\(discovery): \(output)")
                    #expect(output.stdout.components(separatedBy: "pong from \(iroh.id52)").count == 4, "\(output)")
                }
                // The library: a pool with DNS discovery and the relay.
                try await withRelayPool(relay: relay.url) { pool in
                    _ = try await pool.ping(PeerAddress(iroh.id52))
                    let (received, mismatch) = try await echo(IrohRelayHarnessTests.echoBytes, through: pool, to: PeerAddress(iroh.id52))
                    #expect(received == IrohRelayHarnessTests.echoBytes)
                    #expect(mismatch == nil)
                }
            }
            #expect(try await relay.stats().forwardedBytes > 2 * IrohRelayHarnessTests.echoBytes)
        }

        // MARK: (ii) iroh dials peerpool by ID52 alone

        @Test(arguments: [false, true])
        func irohDialsPeerpoolByID52Alone_listenPublishesItsRelay(udpBlocked: Bool) async throws {
            let relay = try await PythonTestRelay.start()
            let dns = try await IrohRecordServer.start()
            // `--relay URL`: the home relay `listen` keeps a connection to and publishes.
            let listener = try await ListenProcess(["--pkarr-relay", dns.url, "--relay", relay.url])
            let id = listener.identities[0]
            let put = try await dns.line(startingWith: "PUT \(ZBase32.encode(id)) ")
            #expect(put.contains("relay=\(relay.url)"), "\(put)")

            let dial = {
                (
                    ping: try await IrohPeer.runClient(peer: id, dialling: .dns(homeRelay: relay.url), ["--mode", "ping", "--count", "2"]),
                    echo: try await IrohPeer.runClient(
                        peer: id, dialling: .dns(homeRelay: relay.url), ["--mode", "echo", "--bytes", "\(IrohRelayHarnessTests.echoBytes)"])
                )
            }
            let (run, echo) = udpBlocked ? try await LoopbackNamespace.withUDPBlocked(ports: [listener.port], dial) : try await dial()
            #expect(run.status == 0, "\(run.transcript)")
            #expect(run.lines.filter { $0 == "PONG ok" }.count == 2, "\(run.transcript)")
            #expect(echo.lines.contains { $0.hasPrefix("ECHO ok \(IrohRelayHarnessTests.echoBytes) ") }, "\(echo.transcript)")
            if udpBlocked { #expect(try await relay.stats().forwarded > 0) }
            _ = await listener.stop()
        }

        // MARK: (iii) the relay dies mid-stream

        @Test func relayKilledAndRestartedMidStream_theWaiterCompletesOrFailsWithTheCause() async throws {
            let relay = try await PythonTestRelay.start()
            let (iroh, dns) = try await IrohRelayHarnessTests.irohServerFoundThroughDNS(relay: relay)

            try await LoopbackNamespace.withUDPBlocked(ports: iroh.udpPorts) {
                try await withRelayPool(relay: relay.url) { pool in
                    let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(iroh.id52))
                    try await stream.write(EchoPattern.buffer(0, 64 * 1024))
                    _ = try await stream.read()
                    // A reader waiting on the stream while the relay vanishes and comes back.
                    let reader = Task { () -> String in
                        do {
                            while try await stream.read() != nil {}
                            return "completed"
                        } catch {
                            return "failed: \(error)"
                        }
                    }
                    await relay.kill()
                    let again = try await PythonTestRelay.start(port: relay.port)
                    _ = try await again.value(of: "ACCEPTED", within: .seconds(30))
                    try? await stream.write(EchoPattern.buffer(0, 64 * 1024))
                    try? await stream.finish()
                    // Never a hang: the outcome comes within the stream's timeouts.
                    let outcome = try await within(.seconds(60), "the reader's outcome") { await reader.value }
                    #expect(outcome == "completed" || outcome.contains("relay") || outcome.contains("timed out") || outcome.contains("closed"),
                            "\(outcome)")
                    withExtendedLifetime(again) {}
                }
            }
            withExtendedLifetime(dns) {}  // it serves the pool's DNS lookups until here
        }

        /// Runs `body` with a pool on a fresh dial-only endpoint that finds peers through DNS
        /// (127.0.0.1:53 in the namespace) and reaches them through the relay at `relay`; shuts the
        /// pool down afterwards, awaited, whether `body` returned or threw.
        private func withRelayPool<T>(relay: String, _ body: (PeerPool) async throws -> T) async throws -> T {
            let configuration = DNSDiscoveryConfiguration(origin: "dns.iroh.link", nameServers: [try SocketAddress(ipAddress: "127.0.0.1", port: 53)])
            let key = SecretKey.generate()
            let endpoint = try await QUICEndpoint.bind(
                host: "127.0.0.1", port: 0, identities: [key], acceptIncoming: false, configuration: quicConfiguration())
            // The relay is the one iroh's record names (`relay=`): the pool connects to it on demand.
            let pool = PeerPool(
                endpoint: endpoint, resolver: DNSAddressResolver(try IrohDNSResolver(configuration: configuration)),
                configuration: poolConfiguration(), relays: .iroh(keys: [key], connectTimeout: .seconds(30)))
            return try await withCleanup { try await body(pool) } cleanup: { await pool.shutdown() }
        }
    }
}

/// Echoes `bytes` of `EchoPattern` through one stream of `pool` to `peer`, writing while reading;
/// returns what came back and the first offset that differed.
func echo(_ bytes: Int, through pool: PeerPool, to peer: PeerAddress) async throws -> (received: Int, firstMismatch: Int?) {
    let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
    let writer = Task {
        var offset = 0
        while offset < bytes {
            let length = min(64 * 1024, bytes - offset)
            try await stream.write(EchoPattern.buffer(offset, length))
            offset += length
        }
        try await stream.finish()
    }
    var received = 0
    var firstMismatch: Int?
    while let chunk = try await stream.read() {
        if firstMismatch == nil, !EchoPattern.matches(chunk, at: received) {
            firstMismatch = received
        }
        received += chunk.readableBytes
    }
    try await writer.value
    return (received, firstMismatch)
}
