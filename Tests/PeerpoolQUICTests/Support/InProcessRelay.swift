import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolQUIC
import PeerpoolTestSupport
import Synchronization

/// A relay server in miniature: the relay paths it hands out (`client(for:)`) exchange datagrams
/// through it as iroh relay clients do through an iroh relay, and it delivers on its own event
/// loop, as a relay client's receiver runs on the client's loop. A double of the relay server
/// only: QUIC, TLS and both endpoints are real.
///
/// Knobs: drop a fraction of datagrams (seeded, so a failure replays), and let one client pass
/// itself off as another (`impersonate`). Counters say what crossed.
final class InProcessRelay: Sendable {
    struct Counters: Sendable {
        /// Sends that carried one datagram.
        var datagrams = 0
        /// Sends that carried a GSO batch (`segmentSize` set).
        var batches = 0
        /// Datagrams (segments of batches included) the relay dropped on purpose.
        var dropped = 0
        /// Datagrams addressed to an ID52 with no client here.
        var undeliverable = 0
    }

    private struct State {
        var clients: [ID52: InProcessRelayClient] = [:]
        /// Real sender → the ID52 the relay claims it is.
        var claims: [ID52: ID52] = [:]
        var dropFraction = 0.0
        var random = SeededGenerator(seed: 0x5EED_0052)
        var counters = Counters()
    }

    private let loop: any EventLoop
    private let state = Mutex(State())

    init(loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        self.loop = loop
    }

    /// The relay path of the client that authenticated as `id`.
    func client(for id: ID52) -> InProcessRelayClient {
        let client = InProcessRelayClient(id: id, relay: self)
        state.withLock { $0.clients[id] = client }
        return client
    }

    /// Drops this fraction of datagrams from now on (0 stops dropping).
    func drop(fraction: Double) {
        state.withLock { $0.dropFraction = fraction }
    }

    /// From now on, datagrams from `impostor` arrive as if sent by `victim`, and datagrams sent to
    /// `victim` reach `impostor`: a lying relay.
    func impersonate(_ victim: ID52, by impostor: ID52) {
        state.withLock { $0.claims[impostor] = victim }
    }

    var counters: Counters { state.withLock { $0.counters } }

    /// Hands `target`'s client exactly these bytes as if `source` sent them: what a broken or
    /// hostile relay might deliver.
    func inject(_ data: ByteBuffer, segmentSize: Int?, from source: ID52, to target: ID52) {
        guard let client = state.withLock({ $0.clients[target] }) else { return }
        loop.execute { client.deliver(from: source, data, segmentSize: segmentSize) }
    }

    fileprivate func forward(_ data: ByteBuffer, segmentSize: Int?, from sender: ID52, to target: ID52) {
        let delivery: (InProcessRelayClient, ID52, ByteBuffer, Int?)? = state.withLock { state in
            if segmentSize == nil { state.counters.datagrams += 1 } else { state.counters.batches += 1 }
            let source = state.claims[sender] ?? sender
            let destination = state.claims.first { $0.value == target }?.key ?? target
            guard let client = state.clients[destination] else {
                state.counters.undeliverable += 1
                return nil
            }
            guard state.dropFraction > 0 else { return (client, source, data, segmentSize) }
            // Drop segment by segment; what is left stays one batch (all full-sized but the last).
            let size = segmentSize ?? data.readableBytes
            var kept = ByteBuffer()
            var keptCount = 0
            var rest = data
            while rest.readableBytes > 0, let segment = rest.readSlice(length: min(size, rest.readableBytes)) {
                if Double.random(in: 0..<1, using: &state.random) < state.dropFraction {
                    state.counters.dropped += 1
                } else {
                    kept.writeImmutableBuffer(segment)
                    keptCount += 1
                }
            }
            guard keptCount > 0 else { return nil }
            return (client, source, kept, keptCount > 1 ? size : nil)
        }
        guard let (client, source, data, segmentSize) = delivery else { return }
        loop.execute { client.deliver(from: source, data, segmentSize: segmentSize) }
    }
}

/// One client's side of an `InProcessRelay`: what an `IrohRelayClient` is to a real relay.
final class InProcessRelayClient: QUICRelayPath {
    let id: ID52
    private let relay: InProcessRelay
    private let receiver = Mutex<(@Sendable (ID52, ByteBuffer, Int?) -> Void)?>(nil)

    fileprivate init(id: ID52, relay: InProcessRelay) {
        self.id = id
        self.relay = relay
    }

    func send(_ datagrams: ByteBuffer, segmentSize: Int?, ecn: UInt8, to peer: ID52) {
        relay.forward(datagrams, segmentSize: segmentSize, from: id, to: peer)
    }

    func setReceiver(_ receiver: @escaping @Sendable (ID52, ByteBuffer, Int?) -> Void) {
        self.receiver.withLock { $0 = receiver }
    }

    fileprivate func deliver(from source: ID52, _ data: ByteBuffer, segmentSize: Int?) {
        receiver.withLock { $0 }?(source, data, segmentSize)
    }
}
