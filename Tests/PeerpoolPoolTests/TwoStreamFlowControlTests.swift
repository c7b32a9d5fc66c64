import Foundation
import NIOCore
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Synchronization
import Testing

/// Two bulk streams from one peer on one QUIC connection: one left unread while the other moves
/// megabytes must resume as soon as it is read again. It used to stall (every run, with or
/// without load): once B stopped being read, its unread bytes (its auto-tuned window, ~16 MiB)
/// held more than half the connection window, so reading A never returned enough connection
/// credit for ngtcp2 to send MAX_DATA, and the sender sent nothing more on any stream
/// (`QUICConnectionCore.returnConnectionCredit`).
@Suite(.timeLimit(.minutes(4)))
struct TwoStreamFlowControlTests {
    @Test(arguments: [false, true])
    func streamLeftUnreadWhileTheOtherMoves8MiB_resumes(underLoad: Bool) async throws {
        // One spinning thread for at most 10 s: enough to disturb the scheduling this test once
        // failed under, while the rest of the suite (running in parallel on 2 cores) still gets
        // a core. Two threads for up to a minute starved every other test into its timeouts.
        let load = underLoad ? BusyLoad(threads: 1, atMost: .seconds(10)) : nil
        defer { load?.stop() }
        let listener = try await ListenProcess(within: .seconds(20))
        try await withCleanup {
            try await withPool(quic: quicConfiguration { $0.idleTimeout = .seconds(30) }) { pool in
                let peer = try listener.peer()
                let header = ProtocolHeader(.generic("source"), extra: "\(1 << 30)")
                let a = try await pool.getStream(header, to: peer)
                let b = try await pool.getStream(header, to: peer)
                try await a.finish()
                try await b.finish()

                // A: 256 KiB, then left alone. B: 8 MiB meanwhile. Then A again: 8 MiB more.
                let first = try await Self.read(a, atLeast: 256 << 10, "A's first 256 KiB")
                let moved = try await Self.read(b, atLeast: 8 << 20, "8 MiB on B while A is not read")
                let resumed: Int
                do {
                    resumed = try await Self.read(a, atLeast: 8 << 20, "8 MiB on A once it is read again")
                } catch {
                    // Diagnosis: does reading B again release A?
                    let more = (try? await Self.read(b, atLeast: 16 << 20, stall: .seconds(5), "B again")) ?? -1
                    let after = (try? await Self.read(a, atLeast: 1 << 20, stall: .seconds(5), "A after B")) ?? -1
                    Issue.record("\(error); then B gave \(more) more bytes and A \(after)")
                    return
                }
                #expect(first >= 256 << 10)
                #expect(moved >= 8 << 20)
                #expect(resumed >= 8 << 20)
                await a.reset(code: 0)
                await b.reset(code: 0)
                await a.stopSending(code: 0)
                await b.stopSending(code: 0)
            }
        } cleanup: {
            await listener.kill()
        }
    }

    /// Reads until `count` bytes came. What this test guards against is a stall, not slowness: it
    /// fails when no byte arrives for `stall` (a loaded 2-core CI run moved only ~300 KB/s here
    /// while still moving), or when `count` has not come within a 90-second bound on the whole read.
    private static func read(_ stream: PeerStream, atLeast count: Int, stall: Duration = .seconds(15), _ what: String) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(90)
        var total = 0
        for _ in 0..<10_000_000 where total < count {
            guard ContinuousClock.now < deadline else {
                throw PoolError(.ackTimeout, "\(what): only \(total) bytes in 90 seconds")
            }
            let chunk: ByteBuffer?
            do {
                chunk = try await within(stall, "a read") { try await stream.read() }
            } catch is TimedOut {
                throw PoolError(.ackTimeout, "\(what): stalled after \(total) bytes, nothing for \(stall)")
            }
            guard let chunk else { break }
            total += chunk.readableBytes
        }
        return total
    }
}

/// Threads that spin to load the CPU, until stopped or `atMost` passed.
final class BusyLoad: Sendable {
    private let stopped = Atomic<Bool>(false)

    init(threads: Int, atMost limit: Duration) {
        let deadline = ContinuousClock.now + limit
        for _ in 0..<threads {
            let thread = Thread { [self] in
                var x: UInt64 = 1
                while !self.stopped.load(ordering: .relaxed) && ContinuousClock.now < deadline {
                    for _ in 0..<100_000 { x = x &* 6364136223846793005 &+ 1 }
                }
                if x == 42 { print("") }
            }
            thread.start()
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }
}
