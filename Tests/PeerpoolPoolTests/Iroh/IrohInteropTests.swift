import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Synchronization
import Testing

/// peerpool against a real iroh endpoint (iroh 1.4.1 through n0's Python bindings,
/// `Interop/iroh_peer.py`), both directions: raw-public-key TLS, fastn's stream protocol, bulk
/// data, many streams, wrong keys, a killed peer, a long idle pooled connection.
///
/// Runs only inside the loopback-only network namespace `IrohNamespaceTests` sets up (iroh
/// probes the LAN gateway); anywhere else the suite is disabled.
@Suite(
    .enabled(if: LoopbackNamespace.requested, "runs inside IrohNamespaceTests' loopback-only network namespace"),
    // The 64 MiB echoes take 45-130 s on a loaded 2-core machine: n0's Python bindings move
    // about 1 MB/s (iroh to iroh as well).
    .timeLimit(.minutes(5)))
struct IrohInteropTests {
    static let echoBytes = 64 * 1024 * 1024

    // MARK: peerpool dials iroh

    @Test func peerpoolDialsIroh_rawPublicKeysBothWays_eachSideSeesTheOthersID52() async throws {
        let iroh = try await IrohPeer.startServer()
        let me = SecretKey.generate()
        try await withEndpoint(identities: [me], acceptIncoming: false) { endpoint in
            let connection = try await endpoint.connect(to: iroh.id52, at: try iroh.socketAddress)
            #expect(connection.remoteID52 == iroh.id52)
            #expect(await connection.peerCertificateType == .rawPublicKey)
            #expect(try await iroh.value(of: "PEER") == me.id52.description)
            await connection.close()
        }
    }

    @Test func peerpoolPingsIroh_libraryAndCommandLine() async throws {
        let iroh = try await IrohPeer.startServer()
        try await withPool { pool in
            let peer = PeerAddress(iroh.id52, at: try iroh.socketAddress)
            for _ in 0..<3 { _ = try await pool.ping(peer) }

            // The issue's reproduction: `peerpool ping ID52@127.0.0.1:PORT` used to fail with alert 40.
            let output = try await TestChild.runPeerpool(["ping", "\(iroh.id52)@127.0.0.1:\(iroh.port)", "--count", "3"])
            #expect(output.status == 0, "\(output)")
            #expect(output.stdout.components(separatedBy: "pong from \(iroh.id52)").count == 4, "\(output)")
            #expect(iroh.values(of: "STREAM").filter { $0 == "\"Ping\"" }.count == 6, "\(iroh.transcript)")
        }
    }

    @Test func peerpoolDialsIroh_echoes64MiBByteExact() async throws {
        let iroh = try await IrohPeer.startServer()
        try await withPool { pool in
            let clock = ContinuousClock()
            let start = clock.now
            let (received, firstMismatch) = try await echo(Self.echoBytes, through: pool, to: PeerAddress(iroh.id52, at: try iroh.socketAddress))
            #expect(received == Self.echoBytes)
            #expect(firstMismatch == nil)
            print("iroh echo, peerpool dialling: 64 MiB both ways in \(clock.now - start)")
        }
    }

    @Test func peerpoolDialsIroh_100ConcurrentStreamsShareOneConnection() async throws {
        let iroh = try await IrohPeer.startServer()
        try await withPool { pool in
            let peer = PeerAddress(iroh.id52, at: try iroh.socketAddress)
            let answers = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<100 {
                    group.addTask { try await echoRoundTrip(pool, peer, "stream \(i) " + String(repeating: "x", count: 4000)) == "stream \(i) " + String(repeating: "x", count: 4000) }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(answers.count == 100)
            #expect(answers.allSatisfy { $0 })
            #expect(await pool.connectionCount == 1)
            #expect(iroh.values(of: "PEER").count == 1, "\(iroh.transcript)")
            #expect(iroh.values(of: "STREAM").count == 100)
        }
    }

    @Test func peerpoolDialsIroh_withTheWrongID52_failsNamingBothKeys() async throws {
        let iroh = try await IrohPeer.startServer()
        try await withEndpoint(acceptIncoming: false) { endpoint in
            let expected = SecretKey.generate().id52
            let error = await #expect(throws: QUICError.self) {
                _ = try await endpoint.connect(to: expected, at: try iroh.socketAddress)
            }
            #expect(error?.code == .wrongPeerKey)
            #expect(error?.message.contains(expected.description) == true, "\(String(describing: error))")
            #expect(error?.message.contains(iroh.id52.description) == true, "\(String(describing: error))")
            #expect(await endpoint.connectionCount == 0)
        }
    }

    @Test func irohKilledMidStream_failsOurSidePromptly() async throws {
        let iroh = try await IrohPeer.startServer()
        let idle = Duration.seconds(3)
        try await withPool(
            poolConfiguration { $0.ackTimeout = .seconds(5) }, quic: quicConfiguration { $0.idleTimeout = idle }
        ) { pool in
            let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(iroh.id52, at: try iroh.socketAddress))
            let echoed = Atomic<Int>(0)
            let reader = Task {
                while let chunk = try await stream.read() { echoed.add(chunk.readableBytes, ordering: .relaxed) }
            }
            let writer = Task {
                let block = ByteBuffer(repeating: 7, count: 16 * 1024)
                while true { try await stream.write(block) }
            }
            defer { reader.cancel(); writer.cancel() }
            // Data flows through iroh and back (an event, bounded), then iroh dies.
            // Generous: the iroh peer is niced and the machine may be busy.
            let flowing = try await within(.seconds(60), "256 KiB echoed through iroh") {
                while echoed.load(ordering: .relaxed) < 256 * 1024 { try await Task.sleep(for: .milliseconds(10)) }
                return true
            }
            #expect(flowing == true)
            let clock = ContinuousClock()
            await iroh.kill()
            let killedAt = clock.now
            #expect(await completes(reader, within: idle + .seconds(5)))
            #expect(await completes(writer, within: idle + .seconds(5)))
            await #expect(throws: (any Error).self) { try await reader.value }
            await #expect(throws: (any Error).self) { try await writer.value }
            #expect(clock.now - killedAt < idle + .seconds(5))
        }
    }

    @Test func pooledConnectionToIroh_idleForMoreThanAMinute_staysUsable() async throws {
        let iroh = try await IrohPeer.startServer()
        try await withPool { pool in
            let peer = PeerAddress(iroh.id52, at: try iroh.socketAddress)
            _ = try await pool.ping(peer)
            #expect(try await echoRoundTrip(pool, peer, "before") == "before")
            // The idle period is what is under test: the pool's own pings (every 12 s) must keep
            // iroh's and our idle timers from closing the connection.
            try await Task.sleep(for: .seconds(65))
            #expect(await pool.connectionCount == 1)
            #expect(try await echoRoundTrip(pool, peer, "after a minute") == "after a minute")
            // Still the first connection: iroh saw exactly one.
            #expect(iroh.values(of: "PEER").count == 1, "\(iroh.transcript)")
        }
    }

    // MARK: iroh dials peerpool

    @Test func irohDialsPeerpool_pingsAndWeSeeItsProvenID52() async throws {
        let peers = Mutex<Set<ID52>>([])
        try await withTestPeer(handler: { incoming in
            peers.withLock { _ = $0.insert(incoming.peer) }
            await echo(incoming)
        }) { server in
            let run = try await IrohPeer.runClient(peer: server.key.id52, port: server.port, ["--mode", "ping", "--count", "3"])
            #expect(run.status == 0, "\(run.transcript)")
            #expect(run.lines.contains("CONNECTED \(server.key.id52)"), "\(run.transcript)")
            #expect(run.lines.filter { $0 == "PONG ok" }.count == 3, "\(run.transcript)")

            // The server recorded the key the iroh client proved.
            let client = try #require(run.lines.first { $0.hasPrefix("ID ") }.map { try ID52(parsing: String($0.dropFirst(3))) })
            let echoRun = try await IrohPeer.runClient(peer: server.key.id52, port: server.port, ["--mode", "echo", "--bytes", "1000"])
            #expect(echoRun.lines.contains { $0.hasPrefix("ECHO ok") }, "\(echoRun.transcript)")
            let echoClient = try #require(echoRun.lines.first { $0.hasPrefix("ID ") }.map { try ID52(parsing: String($0.dropFirst(3))) })
            #expect(peers.withLock { $0 } == [echoClient])
            #expect(client != echoClient)
        }
    }

    @Test func irohDialsPeerpool_echoes64MiBByteExact() async throws {
        try await withTestPeer { server in
            let run = try await IrohPeer.runClient(
                peer: server.key.id52, port: server.port, ["--mode", "echo", "--bytes", "\(Self.echoBytes)"], within: .seconds(240))
            #expect(run.status == 0, "\(run.transcript)")
            let line = run.lines.first { $0.hasPrefix("ECHO ") }
            #expect(line?.hasPrefix("ECHO ok \(Self.echoBytes) ") == true, "\(run.transcript)")
            print("iroh echo, iroh dialling: \(line ?? "-")")
        }
    }

    @Test func irohDialsPeerpool_100ConcurrentStreamsOnOneConnection() async throws {
        try await withTestPeer { server in
            let run = try await IrohPeer.runClient(peer: server.key.id52, port: server.port, ["--mode", "concurrent", "--streams", "100"])
            #expect(run.status == 0, "\(run.transcript)")
            #expect(run.lines.contains("CONCURRENT ok 100"), "\(run.transcript)")
        }
    }

    @Test func irohClientKilledMidStream_failsOurServerSidePromptly() async throws {
        let idle = Duration.seconds(3)
        let (outcomes, outcome) = AsyncStream<String>.makeStream()
        try await withTestPeer(configuration: quicConfiguration { $0.idleTimeout = idle }, handler: { incoming in
            do {
                while let chunk = try await incoming.stream.read() { try await incoming.stream.write(chunk) }
                outcome.yield("ended")
            } catch {
                outcome.yield("failed: \(error)")
            }
        }) { server in
            let client = try await IrohPeer.startClient(peer: server.key.id52, port: server.port, ["--mode", "hold"])
            _ = try await client.value(of: "HOLDING", within: .seconds(60))
            let clock = ContinuousClock()
            await client.kill()
            let killedAt = clock.now
            let result = try await within(idle + .seconds(5), "the held stream's outcome") {
                for await result in outcomes { return result }
                return "no outcome"
            }
            #expect(result.hasPrefix("failed: "), "\(result)")
            #expect(clock.now - killedAt < idle + .seconds(5))
        }
    }

    @Test func irohDialsPeerpool_withTheWrongID52_isRefused() async throws {
        try await withTestPeer { server in
            let run = try await IrohPeer.runClient(peer: SecretKey.generate().id52, port: server.port, ["--mode", "ping"])
            #expect(run.status != 0, "\(run.transcript)")
            // iroh's words for our key not being the one it dialled (TLS alert 48).
            #expect(run.lines.contains { $0.hasPrefix("CONNECT_ERROR") && $0.contains("invalid peer certificate") }, "\(run.transcript)")
            #expect(!run.lines.contains("PONG ok"))
        }
    }

    @Test func irohDialsASeveralIdentityEndpoint_getsTheIdentityAnsweringWithoutSNI() async throws {
        // iroh 1.0.4 and later send no SNI: a socket answers them as one identity only.
        let keys = [SecretKey.generate(), SecretKey.generate()]
        try await withEndpoint(identities: keys, answeringWithoutSNI: keys[1].id52) { endpoint in
            let acceptor = StreamAcceptor(endpoint: endpoint, configuration: AcceptorConfiguration(protocols: [.generic("echo")]), handler: echo)
            let serving = Task { try await acceptor.run() }
            defer { serving.cancel() }
            let port = endpoint.localAddress.port ?? 0

            let answered = try await IrohPeer.runClient(peer: keys[1].id52, port: port, ["--mode", "ping"])
            #expect(answered.lines.contains("PONG ok"), "\(answered.transcript)")
            let refused = try await IrohPeer.runClient(peer: keys[0].id52, port: port, ["--mode", "ping"])
            #expect(refused.status != 0)
            #expect(refused.lines.contains { $0.hasPrefix("CONNECT_ERROR") && $0.contains("invalid peer certificate") }, "\(refused.transcript)")
        }
    }

    @Test func irohDialsEachIdentityOfListenWithASocketPerIdentity() async throws {
        let listen = TestChild.Command.peerpool(
            ["listen", "--address", "127.0.0.1:0", "--identities", "3", "--socket-per-identity", "--exit-on-stdin-eof"])
        try await withTestChild(listen) { child in
            let lines = try await child.nextLines(4, within: .seconds(20))
            #expect(lines.first?.hasPrefix("LISTENING 127.0.0.1 ") == true, "\(lines)")
            let peers = try lines.dropFirst().map { try PeerAddress(parsing: $0) }
            #expect(peers.count == 3)
            #expect(Set(peers.compactMap { $0.socketAddress?.port }).count == 3, "one port each: \(lines)")
            for peer in peers {
                let run = try await IrohPeer.runClient(peer: peer.id52, port: peer.socketAddress?.port ?? 0, ["--mode", "ping"])
                #expect(run.lines.contains("PONG ok"), "\(run.transcript)")
            }
        }
    }

    @Test func irohDialsPeerpool_ourCommandLineListener() async throws {
        let listener = try await ListenProcess(within: .seconds(20))
        let run = try await IrohPeer.runClient(peer: listener.identities[0], port: listener.port, ["--mode", "ping", "--count", "2"])
        #expect(run.status == 0, "\(run.transcript)")
        #expect(run.lines.filter { $0 == "PONG ok" }.count == 2, "\(run.transcript)")
    }
}

extension IrohPeer {
    var socketAddress: SocketAddress {
        get throws { try SocketAddress(ipAddress: "127.0.0.1", port: port) }
    }
}

extension TestPeer {
    var port: Int { endpoint.localAddress.port ?? 0 }
}

/// The echo payload of `iroh_peer.py`: byte i is (j * 7 + j / 251) mod 256 with j = i mod
/// 65,521, so a shifted, dropped or repeated block shows. Slices and compares with memcmp: a
/// debug build spends seconds per 64 MiB on element-wise loops.
enum EchoPattern {
    static let period = 65_521
    /// Two periods plus a chunk, so any chunk of at most `maxChunk` bytes is one contiguous slice.
    static let maxChunk = 1 << 20
    static let repeated: ByteBuffer = {
        let block = (0..<period).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 / 251) }
        var buffer = ByteBuffer()
        while buffer.readableBytes < period + maxChunk { buffer.writeBytes(block) }
        return buffer
    }()

    /// Bytes offset ..< offset + length (length at most `maxChunk`).
    static func buffer(_ offset: Int, _ length: Int) -> ByteBuffer {
        repeated.getSlice(at: offset % period, length: length)!
    }

    /// Whether `chunk` is the payload from `offset` on (chunks longer than `maxChunk` are
    /// compared piecewise).
    static func matches(_ chunk: ByteBuffer, at offset: Int) -> Bool {
        var position = 0
        while position < chunk.readableBytes {
            let length = min(maxChunk, chunk.readableBytes - position)
            let expected = buffer(offset + position, length)
            let same = chunk.withUnsafeReadableBytes { got in
                expected.withUnsafeReadableBytes { want in
                    memcmp(got.baseAddress! + position, want.baseAddress!, length) == 0
                }
            }
            guard same else { return false }
            position += length
        }
        return true
    }
}
