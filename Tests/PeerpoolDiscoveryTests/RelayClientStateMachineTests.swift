import PeerpoolIdentity
import Testing

@testable import PeerpoolDiscovery

/// The relay client without sockets: a manual clock, frames built by hand as a relay would send them.
@Suite struct RelayClientStateMachineTests {
    let t0 = ContinuousClock.now
    let key = SecretKey.generate()
    let peer = [UInt8](repeating: 0x11, count: 32)

    func connected() throws -> RelayClientStateMachine {
        var machine = RelayClientStateMachine(secretKey: key)
        #expect(machine.start(now: t0) == [.openConnection])
        #expect(machine.connectionOpened(now: t0).isEmpty)
        let challenge = Array(UInt8(0)..<16)
        let actions = machine.received(try RelayFrame.serverChallenge(challenge).encoded(), now: t0)
        guard case .send(let auth)? = actions.first, case .clientAuth(let sentKey, let signature) = try RelayFrame(decoding: auth) else {
            Issue.record("expected a clientAuth, got \(actions)")
            return machine
        }
        #expect(sentKey == key.id52.publicKeyBytes)
        #expect(RelayFrame.verify(key: sentKey, signature: signature, challenge: challenge))
        #expect(machine.received(try RelayFrame.serverConfirmsAuth.encoded(), now: t0) == [.connected])
        #expect(machine.isConnected)
        return machine
    }

    @Test func handshake_thenDatagramsBothWays() throws {
        var machine = try connected()
        let data: [UInt8] = [1, 2, 3]
        #expect(machine.received(try RelayFrame.receivedDatagram(source: peer, ecn: 0, data: data).encoded(), now: t0)
                == [.deliver(source: peer, ecn: 0, segmentSize: nil, data: data)])
        let destination = SecretKey.generate().id52
        #expect(try machine.sendDatagram(to: destination, data, now: t0)
                == [.send(try RelayFrame.sendDatagram(destination: destination.publicKeyBytes, ecn: 0, data: data).encoded())])
        #expect(machine.received(try RelayFrame.endpointGone(peer).encoded(), now: t0) == [.peerGone(peer)])
        // The server's pings are answered with the same payload.
        #expect(machine.received(try RelayFrame.ping(Array(1...8)).encoded(), now: t0) == [.send(try RelayFrame.pong(Array(1...8)).encoded())])
    }

    @Test func keepAlive_pingsEvery15s_andAnsweredPingsKeepTheConnection() throws {
        var machine = try connected()
        #expect(machine.nextDeadline == t0 + .seconds(15))
        #expect(machine.tick(now: t0 + .seconds(14)).isEmpty)
        for round in 1...3 {
            let now = t0 + .seconds(15 * round)
            let actions = machine.tick(now: now)
            guard case .send(let bytes)? = actions.first, case .ping(let payload) = try RelayFrame(decoding: bytes) else {
                Issue.record("expected a ping, got \(actions)")
                return
            }
            #expect(machine.nextDeadline == now + .seconds(5))
            #expect(machine.received(try RelayFrame.pong(payload).encoded(), now: now + .seconds(1)).isEmpty)
            #expect(machine.tick(now: now + .seconds(6)).isEmpty)
            #expect(machine.isConnected)
        }
    }

    @Test func keepAlive_withoutAPongIn5s_closesAndReconnectsWithBackoff() throws {
        var machine = try connected()
        let pingAt = t0 + .seconds(15)
        _ = machine.tick(now: pingAt)
        // A pong with the wrong payload does not count.
        #expect(machine.received(try RelayFrame.pong([0, 0, 0, 0, 0, 0, 0, 99]).encoded(), now: pingAt).isEmpty)
        #expect(machine.tick(now: pingAt + .milliseconds(4999)).isEmpty)
        let closing = machine.tick(now: pingAt + .seconds(5))
        guard case .closeConnection(let reason)? = closing.first else {
            Issue.record("expected a close, got \(closing)")
            return
        }
        #expect(reason.code == .relayTimeout)
        #expect(machine.state == .waitingToReconnect(at: pingAt + .seconds(5) + .milliseconds(500)))
        #expect(machine.tick(now: pingAt + .seconds(5) + .milliseconds(500)) == [.openConnection])
        // The next failure waits twice as long.
        #expect(machine.connectionClosed(now: pingAt + .seconds(6)).isEmpty)
        #expect(machine.state == .waitingToReconnect(at: pingAt + .seconds(7)))
    }

    @Test func refusal_isReportedWithTheRelaysReason_andRetriedLater() throws {
        var machine = RelayClientStateMachine(secretKey: key)
        _ = machine.start(now: t0)
        _ = machine.connectionOpened(now: t0)
        _ = machine.received(try RelayFrame.serverChallenge([UInt8](repeating: 1, count: 16)).encoded(), now: t0)
        let actions = machine.received(try RelayFrame.serverDeniesAuth(reason: "not on the list").encoded(), now: t0)
        guard case .closeConnection(let reason)? = actions.first else {
            Issue.record("expected a close, got \(actions)")
            return
        }
        #expect(reason.code == .relayRefused && reason.message.contains("not on the list"))
        #expect(machine.nextDeadline == t0 + .milliseconds(500))
    }

    @Test func handshake_thatNeverFinishes_timesOut() {
        var machine = RelayClientStateMachine(secretKey: key)
        _ = machine.start(now: t0)
        _ = machine.connectionOpened(now: t0)
        #expect(machine.tick(now: t0 + .seconds(9)).isEmpty)
        guard case .closeConnection(let reason)? = machine.tick(now: t0 + .seconds(10)).first else {
            Issue.record("expected a close")
            return
        }
        #expect(reason.code == .relayTimeout)
    }

    @Test func garbageOrOutOfPlaceFrames_closeTheConnection() throws {
        var machine = try connected()
        guard case .closeConnection(let reason)? = machine.received([0xff], now: t0).first else {
            Issue.record("expected a close on garbage")
            return
        }
        #expect(reason.code == .relayFrameMalformed)

        var other = try connected()
        guard case .closeConnection? = other.received(try RelayFrame.serverChallenge(Array(0..<16)).encoded(), now: t0).first else {
            Issue.record("expected a close on a second challenge")
            return
        }
        #expect(!other.isConnected)
        #expect(throws: DiscoveryError(.relayFrameMalformed, "")) { try other.sendDatagram(to: SecretKey.generate().id52, [1], now: t0) }
    }

    @Test func restarting_reconnectsWhenTheRelaySays() throws {
        var machine = try connected()
        let actions = machine.received(try RelayFrame.restarting(reconnectInMilliseconds: 2000, tryForMilliseconds: 10_000).encoded(), now: t0)
        #expect(actions.first == .restarting(reconnectIn: .seconds(2), tryFor: .seconds(10)))
        guard actions.count == 2, case .closeConnection(let reason) = actions[1] else {
            Issue.record("expected a close, got \(actions)")
            return
        }
        #expect(reason.code == .relayRestarting)
        #expect(machine.nextDeadline == t0 + .seconds(2))
        #expect(machine.tick(now: t0 + .seconds(2)) == [.openConnection])
    }

    @Test func statusAndHealth_areReportedAsTheyArrive() throws {
        var machine = try connected()
        #expect(machine.received(try RelayFrame.status(1).encoded(), now: t0) == [.status(1)])
        #expect(machine.received(try RelayFrame.health("overloaded").encoded(), now: t0) == [.health("overloaded")])
        #expect(machine.isConnected)
    }

    @Test func batches_areDeliveredWithTheirSegmentSize() throws {
        var machine = try connected()
        let data = [UInt8](repeating: 7, count: 30)
        #expect(machine.received(try RelayFrame.receivedDatagramBatch(source: peer, ecn: 2, segmentSize: 10, data: data).encoded(), now: t0)
                == [.deliver(source: peer, ecn: 2, segmentSize: 10, data: data)])
    }

    @Test func stop_closesWithTheStoppedCode_andStaysStopped() throws {
        var machine = try connected()
        guard case .closeConnection(let reason)? = machine.stop().first else {
            Issue.record("expected a close")
            return
        }
        #expect(reason.code == .relayStopped)
        #expect(machine.stop().isEmpty)
        #expect(machine.start(now: t0).isEmpty)
        #expect(machine.nextDeadline == nil)
    }

    @Test func unknownFrameTypes_areIgnored() throws {
        var machine = try connected()
        #expect(machine.received(try RelayFrame.unknown(type: 77, payload: [1, 2]).encoded(), now: t0).isEmpty)
        #expect(machine.isConnected)
    }
}
