import Logging
import NIOCore
import PeerpoolIdentity
@testable import PeerpoolQUIC
import PeerpoolTestSupport
import Synchronization
import Testing

/// QUIC through a relay: real endpoints, real ngtcp2 and TLS, real loopback sockets; only the
/// relay server is a double (`InProcessRelay`).
@Suite(.timeLimit(.minutes(2)))
struct RelayPathTests {
    /// Two listening endpoints on 127.0.0.1, each with its relay client attached.
    struct RelayedPair {
        let relay = InProcessRelay()
        let a: QUICEndpoint
        let aKey: SecretKey
        let b: QUICEndpoint
        let bKey: SecretKey

        init(bLogger: Logger? = nil) async throws {
            aKey = SecretKey.generate()
            bKey = SecretKey.generate()
            a = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [aKey], configuration: testConfiguration())
            if let bLogger {
                b = try await QUICEndpoint.bind(
                    host: "127.0.0.1", port: 0, identities: [bKey], configuration: testConfiguration(), logger: bLogger)
            } else {
                b = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [bKey], configuration: testConfiguration())
            }
            try await a.attachRelay(relay.client(for: aKey.id52))
            try await b.attachRelay(relay.client(for: bKey.id52))
        }

        /// A dials B through the relay; both ends.
        func connectAToB() async throws -> (QUICConnection, QUICConnection) {
            async let accepted = nextIncoming(b)
            let connection = try await a.connect(to: bKey.id52, via: .relay)
            guard let serverSide = await accepted else { throw PeerProcessError(message: "B saw no relayed connection") }
            return (connection, serverSide)
        }

        /// Runs `body` with a fresh pair, then closes both endpoints, awaited, whether `body`
        /// returned or threw.
        static func with<T>(bLogger: Logger? = nil, _ body: (RelayedPair) async throws -> T) async throws -> T {
            let pair = try await RelayedPair(bLogger: bLogger)
            return try await withCleanup { try await body(pair) } cleanup: { await pair.close() }
        }

        func close() async {
            await a.close()
            await b.close()
        }
    }

    /// Opens a stream, sends `text`, and expects it back (the peer echoes).
    private func roundTrip(_ connection: QUICConnection, _ text: String) async throws {
        let stream = try await connection.openStream()
        try await stream.write(Array(text.utf8))
        try await stream.finish()
        #expect(String(buffer: try await stream.readToEnd(limit: 1024)) == text)
    }

    @Test func connectViaRelay_authenticatesBothKeys_echoes8MiB_streamsBothWays_inGSOBatches() async throws {
        try await RelayedPair.with { pair in
            let (connection, serverSide) = try await pair.connectAToB()
            #expect(connection.remoteID52 == pair.bKey.id52)
            #expect(serverSide.remoteID52 == pair.aKey.id52)
            #expect(connection.path == .relay && serverSide.path == .relay)
            #expect(connection.path.udpAddress == nil)
            #expect(RelayStandIns.isStandIn(connection.remoteAddress), "\(connection.remoteAddress)")
            #expect(RelayStandIns.isStandIn(serverSide.remoteAddress), "\(serverSide.remoteAddress)")
            let echoes = [Task { await echoStreams(of: serverSide) }, Task { await echoStreams(of: connection) }]
            defer { echoes.forEach { $0.cancel() } }

            let total = 8 * 1024 * 1024
            let stream = try await connection.openStream()
            async let received = readVerifyingPattern(stream, expected: total)
            try await writePattern(stream, total: total)
            #expect(try await received == total)

            // B opens a stream on its end; A echoes.
            let back = try await serverSide.openStream()
            async let backReceived = readVerifyingPattern(back, expected: 1024 * 1024)
            try await writePattern(back, total: 1024 * 1024)
            #expect(try await backReceived == 1024 * 1024)

            let counters = pair.relay.counters
            #expect(counters.batches > 0, "no GSO batch crossed the relay: \(counters)")
            #expect(counters.undeliverable == 0, "\(counters)")
        }
    }

    @Test func peerDialsBack_overTheSameRelay_keepsOneStandInPerPeer() async throws {
        try await RelayedPair.with { pair in
            let (aToB, bSide) = try await pair.connectAToB()

            async let accepted = nextIncoming(pair.a)
            let bToA = try await pair.b.connect(to: pair.aKey.id52, via: .relay)
            let aSide = try #require(await accepted)
            #expect(bToA.remoteID52 == pair.aKey.id52 && aSide.remoteID52 == pair.bKey.id52)
            // One stand-in per peer on each endpoint, whichever side dialled.
            #expect(bToA.remoteAddress == bSide.remoteAddress)
            #expect(aSide.remoteAddress == aToB.remoteAddress)

            let echoes = [Task { await echoStreams(of: bSide) }, Task { await echoStreams(of: aSide) }]
            defer { echoes.forEach { $0.cancel() } }
            try await roundTrip(aToB, "a dialled b")
            try await roundTrip(bToA, "b dialled a")
            #expect(await pair.a.connectionCount == 2)
            #expect(await pair.b.connectionCount == 2)
        }
    }

    @Test func relayDropping5Percent_stillHandshakes_andEchoes2MiBExactly() async throws {
        try await RelayedPair.with { pair in
            pair.relay.drop(fraction: 0.05)
            let (connection, serverSide) = try await pair.connectAToB()
            let echo = Task { await echoStreams(of: serverSide) }
            defer { echo.cancel() }

            let total = 2 * 1024 * 1024
            let stream = try await connection.openStream()
            async let received = readVerifyingPattern(stream, expected: total)
            try await writePattern(stream, total: total)
            #expect(try await received == total)
            #expect(pair.relay.counters.dropped > 0, "\(pair.relay.counters)")
        }
    }

    @Test func relayedAndDirectPeers_atOnce_standInsNeverReachTheSocket() async throws {
        try await RelayedPair.with { pair in
            try await withClient { direct, _ in
                let echo = echoServer(pair.b)
                defer { echo.cancel() }
                let watchA = try await SocketWatch.install(on: pair.a)
                let watchB = try await SocketWatch.install(on: pair.b)

                let relayed = try await pair.a.connect(to: pair.bKey.id52, via: .relay)
                let udp = try await direct.connect(to: pair.bKey.id52, at: pair.b.localAddress)
                #expect(relayed.path == .relay)
                #expect(udp.path == .udp(pair.b.localAddress))

                // Both at once, through the same endpoint B.
                let total = 2 * 1024 * 1024
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for connection in [relayed, udp] {
                        group.addTask {
                            let stream = try await connection.openStream()
                            async let received = readVerifyingPattern(stream, expected: total)
                            try await writePattern(stream, total: total)
                            #expect(try await received == total)
                        }
                    }
                    try await group.waitForAll()
                }
                // The socket carried the direct peer and still does.
                try await roundTrip(udp, "still direct")
                #expect(watchB.writes > 0)
                #expect(watchA.standInWrites == 0 && watchB.standInWrites == 0)
            }
        }
    }

    @Test func relayedPeer_provingAnotherKeyThanTheRelayClaims_isRefused() async throws {
        let log = LogCapture()
        try await RelayedPair.with(bLogger: log.logger) { pair in
            // The relay says A's packets come from `claimed` (and hands A what B sends `claimed`).
            let claimed = SecretKey.generate().id52
            pair.relay.impersonate(claimed, by: pair.aKey.id52)

            // A's side of TLS 1.3 completes before B checks A's certificate, so A's connect may
            // return first; either way B's refusal (a TLS alert) ends it as a failed handshake.
            do {
                let connection = try await pair.a.connect(to: pair.bKey.id52, via: .relay)
                let reason = try await withDeadline(.seconds(10)) { await connection.closed() }
                guard case .handshakeFailed = reason else {
                    Issue.record("A's connection ended with \(String(describing: reason)), not a refused handshake")
                    return
                }
            } catch let error as QUICError {
                #expect(error.code == .handshakeFailed, "\(error)")
            }
            let line = await log.line(containing: "the relay delivered this connection as coming from \(claimed)", within: .seconds(10))
            #expect(line?.contains("proved the key of \(pair.aKey.id52)") == true, "\(String(describing: line))")
            #expect(await pair.b.connectionCount == 0)
        }
    }

    @Test func connectViaRelay_withoutARelay_failsNoRelayPath_andStandInsAreNoUDPAddresses() async throws {
        try await withClient { client, _ in
            let error = await #expect(throws: QUICError.self) {
                _ = try await client.connect(to: SecretKey.generate().id52, via: .relay)
            }
            #expect(error?.code == .noRelayPath, "\(String(describing: error))")
            #expect(error?.message.contains("attachRelay") == true, "\(String(describing: error))")

            let standIn = try SocketAddress(ipAddress: "fd70:6565:7270::1", port: 1)
            let refused = await #expect(throws: QUICError.self) {
                _ = try await client.connect(to: SecretKey.generate().id52, at: standIn)
            }
            #expect(refused?.code == .addressUnreachable, "\(String(describing: refused))")
            #expect(refused?.message.contains("stand-in") == true, "\(String(describing: refused))")
            #expect(await client.connectionCount == 0)
        }
    }

    @Test func relayDeliveringGarbage_orImpossibleSegmentSizes_harmsNoConnection() async throws {
        try await RelayedPair.with { pair in
            let (connection, serverSide) = try await pair.connectAToB()
            let echo = Task { await echoStreams(of: serverSide) }
            defer { echo.cancel() }

            let garbage = patternBuffer(offset: 7, count: 3000)
            let stranger = SecretKey.generate().id52
            for segmentSize in [nil, 0, -1, 1, 65_536, Int.max] as [Int?] {
                pair.relay.inject(garbage, segmentSize: segmentSize, from: pair.aKey.id52, to: pair.bKey.id52)
                pair.relay.inject(garbage, segmentSize: segmentSize, from: stranger, to: pair.bKey.id52)
            }
            try await roundTrip(connection, "after the garbage")
            #expect(await pair.b.connectionCount == 1)
        }
    }

    @Test func attachRelay_twice_failsLimitReached() async throws {
        try await RelayedPair.with { pair throws in
            let error = await #expect(throws: QUICError.self) {
                try await pair.a.attachRelay(pair.relay.client(for: pair.aKey.id52))
            }
            #expect(error?.code == .limitReached, "\(String(describing: error))")
        }
    }

    @Test func standIns_onePerPeer_evictOnlyIdle_neverReuseAnAddress() throws {
        var standIns = RelayStandIns(capacity: 2)
        let peers = (0..<3).map { _ in RelayStandIns.Peer(slot: 0, id: SecretKey.generate().id52) }
        let firstAllocated = standIns.address(for: peers[0])
        let first = try #require(firstAllocated)
        #expect(standIns.address(for: peers[0]) == first)
        #expect(RelayStandIns.isStandIn(first))
        #expect(!RelayStandIns.isStandIn(try SocketAddress(ipAddress: "::1", port: 1)))
        #expect(!RelayStandIns.isStandIn(try SocketAddress(ipAddress: "127.0.0.1", port: 1)))
        let secondAllocated = standIns.address(for: peers[1])
        let second = try #require(secondAllocated)
        #expect(second != first)
        standIns.pin(first)
        standIns.pin(second)
        #expect(standIns.address(for: peers[2]) == nil, "all pinned: nothing to evict")

        standIns.unpin(second)
        let thirdAllocated = standIns.address(for: peers[2])
        let third = try #require(thirdAllocated)
        #expect(third != first && third != second)
        #expect(standIns.peer(at: second) == nil)
        #expect(standIns.peer(at: first) == peers[0])
        #expect(standIns.peer(at: third) == peers[2])
        #expect(standIns.count == 2)

        // Churn keeps the idle queue bounded and the pinned entry in place.
        for _ in 0..<1000 {
            standIns.pin(third)
            standIns.unpin(third)
        }
        let againAllocated = standIns.address(for: peers[1])
        let again = try #require(againAllocated)
        #expect(again != second, "an evicted stand-in is never handed out again")
        #expect(standIns.peer(at: first) == peers[0])
        #expect(standIns.count == 2)
    }
}

/// Watches what an endpoint's UDP socket is asked to send: a stand-in address there would be a
/// relayed packet leaking onto the network.
final class SocketWatch: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let counts = Mutex((writes: 0, standIns: 0))

    var writes: Int { counts.withLock { $0.writes } }
    var standInWrites: Int { counts.withLock { $0.standIns } }

    static func install(on endpoint: QUICEndpoint) async throws -> SocketWatch {
        let watch = SocketWatch()
        let channel = endpoint.core.channel
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(watch, position: .first)
        }.get()
        return watch
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let envelope = unwrapOutboundIn(data)
        let standIn = RelayStandIns.isStandIn(envelope.remoteAddress)
        counts.withLock {
            $0.writes += 1
            if standIn { $0.standIns += 1 }
        }
        context.write(data, promise: promise)
    }
}
