import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

@Suite(.timeLimit(.minutes(3)))
struct PeerPoolTests {
    @Test func manyRequests_reuseOneConnection() async throws {
        try await withTestPeer { peer in
            try await withPool { pool throws in
                for i in 0..<20 {
                    #expect(try await echoRoundTrip(pool, peer.address, "request \(i)") == "request \(i)")
                }
                #expect(await pool.connectionCount == 1)
                #expect(await peer.endpoint.connectionCount == 1)
            }
        }
    }

    @Test func thousandConcurrentRequests_shareOneConnection_andAllSucceed() async throws {
        try await withTestPeer { peer in
            // Generous: the whole suite runs in parallel on 2 cores in a debug build.
            try await withPool(poolConfiguration { $0.ackTimeout = .seconds(50); $0.connectTimeout = .seconds(30) }) { pool in
                try await withThrowingTaskGroup(of: String.self) { group in
                    for i in 0..<1000 {
                        group.addTask { try await echoRoundTrip(pool, peer.address, "\(i)") }
                    }
                    var answers = Set<String>()
                    for try await answer in group { answers.insert(answer) }
                    #expect(answers.count == 1000)
                }
                #expect(await peer.endpoint.connectionCount == 1)
            }
        }
    }

    @Test func peerDown_everyWaiterFailsWithConnectError_thenNextRequestSucceedsWhenBack() async throws {
        // The peer is down: nothing answers at its address.
        let reserved = try await silentSocket()
        let port = reserved.localAddress!.port!
        let key = SecretKey.generate()
        let address = PeerAddress(key.id52, at: try SocketAddress(ipAddress: "127.0.0.1", port: port))
        try await withPool(poolConfiguration { $0.connectTimeout = .seconds(3) }) { pool in
            let clock = ContinuousClock()
            let start = clock.now
            let errors = await withTaskGroup(of: (any Error)?.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        do {
                            _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: address)
                            return nil
                        } catch { return error }
                    }
                }
                var all: [(any Error)?] = []
                for await error in group { all.append(error) }
                return all
            }
            #expect(errors.allSatisfy { ($0 as? PoolError)?.code == .connectFailed })
            #expect(clock.now - start < .seconds(3) + .seconds(30), "waiters must fail near the connect timeout, not hang")

            // The peer comes back (at a fresh port: rebinding the old one raced other processes of
            // the suite binding ephemeral ports): the next request for it connects afresh.
            try await reserved.close()
            try await withEndpoint(identities: [key]) { endpoint in
                let acceptor = StreamAcceptor(endpoint: endpoint, configuration: AcceptorConfiguration(protocols: [.generic("echo")]), handler: echo)
                let serving = Task { try await acceptor.run() }
                defer { serving.cancel() }
                // The pool's 3 s connect timeout (short, for the phase above) can run out on a loaded
                // machine; what matters is that a new request connects afresh: at most 3 attempts.
                let back = PeerAddress(key.id52, at: endpoint.localAddress)
                var answer: String?
                for _ in 0..<3 where answer == nil {
                    do {
                        answer = try await echoRoundTrip(pool, back, "back")
                    } catch let error as PoolError where error.code == .connectFailed {
                        continue
                    }
                }
                #expect(answer == "back")
            }
        }
    }

    @Test func silentPeer_waitersFailWithinConnectTimeout() async throws {
        let silent = try await silentSocket()
        defer { silent.close(promise: nil) }
        try await withPool(poolConfiguration { $0.connectTimeout = .milliseconds(500) }) { pool in
            let peer = PeerAddress(SecretKey.generate().id52, at: silent.localAddress!)
            let clock = ContinuousClock()
            let start = clock.now
            let error = await #expect(throws: PoolError.self) {
                _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
            }
            #expect(error?.code == .connectFailed)
            #expect(clock.now - start < .milliseconds(500) + .seconds(30), "the waiter must fail near the connect timeout, not hang")
        }
    }

    @Test func peerThatClosesMidHeader_failsTheWaiterPromptly() async throws {
        // A raw QUIC peer that reads part of the header and ends the stream without an ack.
        try await withRawPeer(handle: { stream in
            _ = try? await stream.read()
            try? await stream.write(Array("ac".utf8))
            try? await stream.finish()
        }) { peer in
            try await withPool { pool in
                let error = await #expect(throws: StreamProtocolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer.address)
                }
                #expect(error?.code == .notAcknowledged)
                #expect(error?.message.contains("\"ac\"") == true)
            }
        }
    }

    @Test func peerThatNeverAcks_failsWithAckTimeout() async throws {
        try await withRawPeer(handle: { _ in }) { peer in
            try await withPool(poolConfiguration { $0.ackTimeout = .milliseconds(400) }) { pool in
                let error = await #expect(throws: PoolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer.address)
                }
                #expect(error?.code == .ackTimeout)
            }
        }
    }

    @Test func refusedProtocol_failsClearly_andTheConnectionLivesOn() async throws {
        try await withTestPeer { peer in
            try await withPool { pool throws in
                let error = await #expect(throws: StreamProtocolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.tcp), to: peer.address)
                }
                #expect(error?.code == .refused)
                #expect(error?.message.contains("\"Tcp\"") == true)
                #expect(try await echoRoundTrip(pool, peer.address, "still fine") == "still fine")
                #expect(await peer.endpoint.connectionCount == 1)
            }
        }
    }

    @Test func impersonation_isRefused_namingBothKeys() async throws {
        try await withTestPeer { peer in
            try await withPool { pool in
                let claimed = SecretKey.generate().id52
                let error = await #expect(throws: PoolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(claimed, at: peer.endpoint.localAddress))
                }
                #expect(error?.code == .connectFailed)
                #expect(error?.message.contains(claimed.description) == true)
                #expect(error?.message.contains(peer.key.id52.description) == true)
            }
        }
    }

    @Test func cancellingAWaiter_withdrawsIt_andLeavesThePoolUsable() async throws {
        let silent = try await silentSocket()
        defer { silent.close(promise: nil) }
        try await withPool(poolConfiguration {
            $0.connectTimeout = .seconds(30)
            $0.maxWaitersPerPeer = 1
        }) { pool in
            let peer = PeerAddress(SecretKey.generate().id52, at: silent.localAddress!)
            let waiter = Task { try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer) }
            for _ in 0..<10_000 where await pool.requestsInFlight == 0 { await Task.yield() }
            // The single waiter slot is taken while it waits...
            let error = await #expect(throws: PoolError.self) {
                _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
            }
            #expect(error?.code == .tooManyWaiters)
            waiter.cancel()
            #expect(await completes(waiter, within: .seconds(5)), "cancelled long before the 30 s connect timeout")
            await #expect(throws: CancellationError.self) { _ = try await waiter.value }
            #expect(await pool.requestsInFlight == 0)
            // ...and free again once it was withdrawn: a new request waits instead of being refused.
            let again = Task { try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer) }
            #expect(await completes(again, within: .milliseconds(300)) == false)
            again.cancel()
            await #expect(throws: CancellationError.self) { _ = try await again.value }
        }
    }

    @Test func idleConnection_isPingedThenClosedAfterConfiguredPeriods() async throws {
        // Accept by hand so the test holds the server's end of the connection.
        let key = SecretKey.generate()
        try await withEndpoint(identities: [key]) { endpoint in
            let acceptor = StreamAcceptor(endpoint: endpoint, configuration: AcceptorConfiguration(protocols: [.generic("echo")]), handler: echo)
            try await withPool(poolConfiguration {
                $0.pingInterval = .milliseconds(150)
                $0.idlePeriodsBeforeClose = 4
            }) { pool in
                let address = PeerAddress(key.id52, at: endpoint.localAddress)
                let clock = ContinuousClock()
                let start = clock.now
                async let accepted = firstConnection(of: endpoint)
                let first = Task { try await echoRoundTrip(pool, address, "x") }
                let serverSide = try #require(await accepted)
                let serving = Task { await acceptor.serve(serverSide) }
                defer { serving.cancel() }
                #expect(try await first.value == "x")
                #expect(await pool.connectionCount == 1)

                let reason = await serverSide.closed()
                #expect(reason == .peerClosed(applicationCode: 0, reason: "idle"))
                // Four periods after the last use (which came after `start`): three pings, then the close.
                #expect(clock.now - start >= .milliseconds(600))
                #expect(await pool.connectionCount == 0)
            }
        }
    }

    @Test func extraLine_andBytesRightAfterAck_reachTheOtherSide() async throws {
        try await withTestPeer(protocols: [.http], extraLine: [.http], handler: { incoming in
            try? await incoming.stream.write(Array("extra=\(incoming.header.extra ?? "none")\n".utf8))
            try? await incoming.stream.finish()
        }) { peer in
            try await withPool { pool in
                let stream = try await pool.getStream(ProtocolHeader(.http, extra: "device-7"), to: peer.address)
                #expect(String(buffer: try await stream.readToEnd(limit: 100)) == "extra=device-7\n")
            }
        }
    }

    @Test func addressBook_resolvesPeersWithoutAddress_andUnknownPeersFailClearly() async throws {
        try await withTestPeer { peer in
            try await withPool(resolver: AddressBook([peer.key.id52: [peer.endpoint.localAddress]])) { pool throws in
                #expect(try await echoRoundTrip(pool, PeerAddress(peer.key.id52), "book") == "book")
                let stranger = SecretKey.generate().id52
                let error = await #expect(throws: PoolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(stranger))
                }
                #expect(error?.code == .noAddress)
            }
        }
    }

    @Test func ping_roundTrips() async throws {
        try await withTestPeer { peer in
            try await withPool { pool in
                let rtt = try await pool.ping(peer.address)
                #expect(rtt > .zero && rtt < .seconds(5))
            }
        }
    }

    @Test func connectionCap_refusesAtOnceWhenNoneIsIdle_andEvictsAnIdleOne() async throws {
        let silent = try await silentSocket()
        defer { silent.close(promise: nil) }
        try await withTestPeer { peer in
            try await withPool(poolConfiguration {
                $0.maxConnections = 1
                $0.connectTimeout = .seconds(30)
            }) { pool throws in
                let busy = Task { try await pool.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(SecretKey.generate().id52, at: silent.localAddress!)) }
                for _ in 0..<10_000 where await pool.requestsInFlight == 0 { await Task.yield() }
                #expect(await pool.requestsInFlight == 1)

                let clock = ContinuousClock()
                let start = clock.now
                let error = await #expect(throws: PoolError.self) {
                    _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer.address)
                }
                #expect(error?.code == .tooManyConnections)
                #expect(clock.now - start < .seconds(3), "refused at once, not after the 30 s connect timeout")

                // Once the busy pair is done (withdrawn), its slot goes to the next peer.
                busy.cancel()
                _ = try? await busy.value
                #expect(try await echoRoundTrip(pool, peer.address, "room") == "room")
            }
        }
    }
}

/// Keeps values alive for a test.
actor Counter {
    private var kept: [any Sendable] = []
    func keep(_ value: any Sendable) { kept.append(value) }
}

/// The first connection an endpoint accepted, if one arrives within 5 s.
func firstConnection(of endpoint: QUICEndpoint) async -> QUICConnection? {
    await withTaskGroup(of: QUICConnection?.self) { group in
        group.addTask {
            var iterator = endpoint.incomingConnections.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try? await Task.sleep(for: .seconds(5))
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
