import NIOCore
import PeerpoolIdentity
import Synchronization

/// Datagrams a relay delivered, on their way to the endpoint's event loop.
///
/// The relay calls its receiver on its own thread; the first delivery of a burst schedules one
/// drain on the endpoint's loop, and that drain takes everything queued by then, so a burst is
/// answered in one write pass, as a socket's read burst is. Bounded in bytes like a socket's
/// receive buffer (`QUICConfiguration.socketBufferSize`): past the bound, datagrams are
/// dropped, as the kernel drops UDP, and QUIC recovers.
final class RelayInbox: Sendable {
    struct Delivery: Sendable {
        let source: ID52
        let data: ByteBuffer
        let segmentSize: Int?
    }

    private struct State {
        var queued: [Delivery] = []
        var bytes = 0
        var drainScheduled = false
    }

    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Queues `delivery` unless the inbox is full. True when the caller must schedule a drain.
    func offer(_ delivery: Delivery) -> Bool {
        state.withLock { state in
            let size = delivery.data.readableBytes
            guard state.bytes + size <= limit else { return false }
            state.queued.append(delivery)
            state.bytes += size
            guard !state.drainScheduled else { return false }
            state.drainScheduled = true
            return true
        }
    }

    /// Everything queued; the next `offer` schedules a new drain.
    func take() -> [Delivery] {
        state.withLock { state in
            let all = state.queued
            state = State()
            return all
        }
    }
}
