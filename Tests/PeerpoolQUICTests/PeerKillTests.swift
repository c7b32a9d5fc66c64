import NIOCore
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

@Suite(.timeLimit(.minutes(3)))
struct PeerKillTests {
    @Test func peerKilledMidTransfer_failsReadsAndWrites_withinIdleTimeout() async throws {
        let peer = try await PeerProcess()
        // Short enough to see a dead peer quickly, long enough that a loaded 2-core machine
        // (the whole suite runs in parallel) never starves a live one into an idle timeout.
        let idle = Duration.seconds(5)
        try await withClient(configuration: testConfiguration { $0.idleTimeout = idle }) { client, _ in
            let connection = try await client.connect(to: peer.id52, at: peer.address)

            // One stream downloads, another uploads; both are mid-transfer when the peer dies.
            let download = try await connection.openStream()
            try await download.write(Array("SOURCE 100000000000\n".utf8))
            let upload = try await connection.openStream()
            try await upload.write(Array("SINK\n".utf8))
            let received = Counter()
            let reader = Task {
                while let chunk = try await download.read() { await received.add(chunk.readableBytes) }
            }
            let writer = Task {
                let block = ByteBuffer(repeating: 1, count: 64 * 1024)
                while true { try await upload.write(block) }
            }
            // Wait for data to flow (an event, bounded), then kill.
            let flowing = try await withDeadline(.seconds(100)) {
                while await received.value < 1024 * 1024 { try await Task.sleep(for: .milliseconds(10)) }
                return true
            }
            #expect(flowing == true)
            let clock = ContinuousClock()
            await peer.kill()
            let killedAt = clock.now

            // Neither side may hang: both must fail, and near the idle timeout (the slack is for
            // a loaded machine, not a speed goal).
            #expect(await completes(reader, within: idle + .seconds(20)))
            #expect(await completes(writer, within: .seconds(20)))
            let readError = await #expect(throws: QUICError.self) { try await reader.value }
            let writeError = await #expect(throws: QUICError.self) { try await writer.value }
            #expect(readError?.code == .connectionClosed)
            #expect(writeError?.code == .connectionClosed)
            #expect(clock.now - killedAt < idle + .seconds(20))
            #expect(await connection.closed() == .idleTimeout)
        }
    }
}
