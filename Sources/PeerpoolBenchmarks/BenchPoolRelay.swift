import PeerpoolCommandSupport
import NIOCore
import NIOPosix
import Synchronization

/// A UDP relay on loopback that holds every datagram for half a round trip in each direction:
/// network latency for `bench pool --rtt-ms` without netem or privileges.
///
/// One relay serves one client socket: the client sends to `address`; the relay sends that on
/// to `target` from a socket of its own, and what comes back to the client. Datagrams keep
/// their order. Each direction holds at most `queueLimit` datagrams; past that it drops them,
/// a loss QUIC recovers from. Both sockets run on one event loop of `group`, so the queues are
/// loop-confined. Datagrams from any other address are dropped.
final class BenchPoolRelay: Sendable {
    /// Where the client sends.
    let address: SocketAddress
    private let front: any Channel
    private let back: any Channel

    static let queueLimit = 8192

    private init(address: SocketAddress, front: any Channel, back: any Channel) {
        self.address = address
        self.front = front
        self.back = back
    }

    static func start(
        client: SocketAddress, target: SocketAddress, roundTrip: Duration, group: any EventLoopGroup
    ) async throws -> BenchPoolRelay {
        let oneWay = TimeAmount.nanoseconds(Int64(roundTrip.benchSeconds * 1e9 / 2))
        let loop = group.next()
        let toBack = Link()
        let toFront = Link()
        let front = try await bind(on: loop) {
            DelayHandler(accepting: client, out: toBack, destination: target, delay: oneWay)
        }
        let back: any Channel
        do {
            back = try await bind(on: loop) {
                DelayHandler(accepting: target, out: toFront, destination: client, delay: oneWay)
            }
        } catch {
            try? await front.close()
            throw error
        }
        toBack.set(back)
        toFront.set(front)
        guard let address = front.localAddress else {
            try? await front.close()
            try? await back.close()
            throw CommandError(.spawnFailed, "the relay's UDP socket has no local address")
        }
        return BenchPoolRelay(address: address, front: front, back: back)
    }

    func close() async {
        try? await front.close()
        try? await back.close()
    }

    private static func bind(on loop: any EventLoop, _ handler: @escaping @Sendable () -> DelayHandler) async throws -> any Channel {
        do {
            return try await DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 * 1024 * 1024)
                .channelOption(.socketOption(.so_sndbuf), value: 4 * 1024 * 1024)
                .channelOption(.datagramVectorReadMessageCount, value: 32)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 32 * 2048))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler()) }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        } catch {
            throw CommandError(.spawnFailed, "cannot bind the relay's UDP socket: \(error)")
        }
    }

    /// The channel a direction's datagrams leave by, known once both sockets are bound.
    private final class Link: Sendable {
        private let channel = Mutex<(any Channel)?>(nil)
        func set(_ value: any Channel) { channel.withLock { $0 = value } }
        var value: (any Channel)? { channel.withLock { $0 } }
    }

    /// Queues what one socket receives and sends it out by the other after `delay`. One timer
    /// per burst: it sends everything due, then re-arms for the next datagram.
    private final class DelayHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>

        private let accepting: SocketAddress
        private let out: Link
        private let destination: SocketAddress
        private let delay: TimeAmount
        private var queue = CircularBuffer<(due: NIODeadline, data: ByteBuffer)>()
        private var drainScheduled = false

        init(accepting: SocketAddress, out: Link, destination: SocketAddress, delay: TimeAmount) {
            self.accepting = accepting
            self.out = out
            self.destination = destination
            self.delay = delay
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard envelope.remoteAddress == accepting, queue.count < BenchPoolRelay.queueLimit else { return }
            queue.append((.now() + delay, envelope.data))
            scheduleDrain(context)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // ICMP port unreachable after the listener exits: nothing to do.
        }

        private func scheduleDrain(_ context: ChannelHandlerContext) {
            guard !drainScheduled, let first = queue.first else { return }
            drainScheduled = true
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(deadline: first.due) {
                let (handler, context) = bound.value
                handler.drain(context)
            }
        }

        private func drain(_ context: ChannelHandlerContext) {
            drainScheduled = false
            guard let channel = out.value, channel.isActive else {
                queue.removeAll()
                return
            }
            let now = NIODeadline.now()
            while let first = queue.first, first.due <= now {
                queue.removeFirst()
                channel.write(AddressedEnvelope(remoteAddress: destination, data: first.data), promise: nil)
            }
            channel.flush()
            scheduleDrain(context)
        }
    }
}
