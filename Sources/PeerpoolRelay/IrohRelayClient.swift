import Logging
import NIOCore
import PeerpoolIdentity
import Synchronization

/// A client of an iroh relay: one WebSocket to the relay's `/relay`, the challenge handshake
/// proving this endpoint's key, keep-alive pings, reconnects with backoff, and datagrams to and
/// from other endpoints addressed by their ``ID52``. What iroh falls back to when no direct
/// path works; the QUIC layer sends its packets through ``send(_:segmentSize:ecn:to:)`` and
/// takes what arrives from the receiver set with ``setReceiver(_:)``.
///
/// Thread safety: every method may be called from any thread. All mutable state lives in a
/// `RelayConnectionCore` confined to ``eventLoop`` (reached through `NIOLoopBoundBox`, which traps
/// off the loop); calls from elsewhere hop there, in the order they were made. The receiver and
/// the event handler run on that loop and must not block it.
///
/// Lifetime: ``start()`` begins connecting and keeps the connection up until ``close()``.
/// Releasing the client without closing it closes it too, without waiting.
public final class IrohRelayClient: Sendable {
    /// The loop every callback of this client runs on.
    public let eventLoop: any EventLoop
    private let core: NIOLoopBoundBox<RelayConnectionCore>
    private let dropped: DropCounter
    private let nextWaiter = Atomic<Int>(0)

    /// Prepares a client of the relay at `url` (`http://host:port` or `https://host[:port]`;
    /// an invalid URL is reported by ``waitUntilConnected(timeout:)``) that authenticates as
    /// `secretKey`'s endpoint. Nothing connects before ``start()``.
    public init(
        url: String, secretKey: SecretKey, eventLoopGroup: any EventLoopGroup,
        configuration: Configuration = Configuration(), logger: Logger = IrohRelayClient.silentLogger
    ) {
        let eventLoop = eventLoopGroup.next()
        var logger = logger
        logger[metadataKey: "relay.endpoint"] = "\(secretKey.id52)"
        let parsed = Result { () throws(RelayError) in try RelayURL(parsing: url) }
        let dropped = DropCounter()
        self.dropped = dropped
        self.eventLoop = eventLoop
        // Built here and moved into the box: from now on only the loop touches it.
        self.core = NIOLoopBoundBox.makeBoxSendingValue(RelayConnectionCore(
            url: parsed, secretKey: secretKey, eventLoop: eventLoop, configuration: configuration,
            logger: logger, dropped: dropped), eventLoop: eventLoop)
    }

    deinit {
        let core = self.core
        eventLoop.execute { _ = core.value.close() }
    }

    /// A logger that drops everything: the default when the caller passes none.
    public static let silentLogger = Logger(label: "peerpool.relay", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Queues one datagram, or a GSO batch of equal-sized segments (segmentSize != nil), for `peer`.
    /// Never blocks; drops (like UDP) when not connected or the outgoing queue is full, and counts the drop.
    public func send(_ datagrams: ByteBuffer, segmentSize: Int?, ecn: UInt8 = 0, to peer: ID52) {
        onLoop { $0.send(datagrams, segmentSize: segmentSize, ecn: ecn, to: peer) }
    }

    /// Receives every datagram from the relay: (source, data, segmentSize). Called on the client's event loop. Set once, before start().
    public func setReceiver(_ receiver: @escaping @Sendable (ID52, ByteBuffer, Int?) -> Void) {
        onLoop { $0.setReceiver(receiver) }
    }

    /// Receives every ``Event``, on the client's event loop. Set once, before start().
    public func setEventHandler(_ handler: @escaping @Sendable (Event) -> Void) {
        onLoop { $0.setEventHandler(handler) }
    }

    /// Begins connecting; returns immediately. Calling it again, or after ``close()``, does nothing.
    public func start() {
        onLoop { $0.start() }
    }

    /// Returns once the handshake with the relay is done. Throws ``RelayError``: `relay_refused`
    /// with the relay's reason as soon as it refuses; after `timeout`, the last failure
    /// (`relay_unreachable`, `relay_upgrade_failed`, ...) or `relay_handshake_timeout`;
    /// `relay_closed` once closed; `invalid_relay_url`. A connection that drops later is
    /// reported through the events, not here. Cancellation throws `CancellationError`.
    public func waitUntilConnected(timeout: Duration) async throws {
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        let promise = eventLoop.makePromise(of: Void.self)
        onLoop { $0.addWaiter(id: id, promise: promise, timeout: timeout) }
        try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            onLoop { $0.cancelWaiter(id: id) }
        }
    }

    /// Closes the connection and stops reconnecting; returns once the WebSocket is closed (an
    /// attempt still connecting is abandoned and closed when it completes). Idempotent.
    public func close() async {
        let closed = eventLoop.flatSubmit { self.core.value.close() }
        try? await closed.get()
    }

    /// Datagrams dropped so far: sent while not connected, over the queue limit, or not
    /// sendable (empty, over 64 KiB without a segment size, segment size over 65535).
    public var droppedDatagrams: Int { dropped.value }

    private func onLoop(_ body: @escaping @Sendable (RelayConnectionCore) -> Void) {
        let core = self.core
        if eventLoop.inEventLoop {
            body(core.value)
        } else {
            eventLoop.execute { body(core.value) }
        }
    }
}
