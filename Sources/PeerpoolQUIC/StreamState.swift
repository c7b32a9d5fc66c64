import NIOCore

/// Everything a connection knows about one bidirectional stream. Lives in
/// `QUICConnectionCore.streams` and is touched only on the connection's event loop.
final class StreamState {
    let id: Int64

    // Receive side.
    /// Bytes that arrived and the application has not read. Bounded by the stream's receive
    /// window: credit is extended only as the application reads.
    var received: ByteBuffer
    var receivedFin = false
    /// Application code of the peer's RESET_STREAM.
    var resetByPeer: UInt64?
    /// We called stop-sending: arriving data is dropped.
    var readStopped = false
    var reader: (id: UInt64, continuation: CheckedContinuation<ByteBuffer?, Error>)?

    // Send side.
    var send = SendBuffer()
    var finQueued = false
    var finSent = false
    /// The peer sent STOP_SENDING (ngtcp2 0.12 does not tell its code).
    var stoppedByPeer = false
    var locallyReset = false
    /// Writers waiting for `send.bufferedBytes` to fall under the limit.
    var writers: [(id: UInt64, continuation: CheckedContinuation<Void, Error>)] = []
    /// In `QUICConnectionCore.sendQueue`.
    var queuedForSend = false

    // Lifecycle.
    /// ngtcp2 closed the stream (both directions done, or reset).
    var transportClosed = false
    /// The application dropped its `QUICStream` handle.
    var handleReleased = false

    init(id: Int64, allocator: ByteBufferAllocator) {
        self.id = id
        self.received = allocator.buffer(capacity: 0)
    }

    /// Something is left to hand to ngtcp2.
    var hasPendingSend: Bool {
        !locallyReset && !stoppedByPeer && (send.unsentBytes > 0 || (finQueued && !finSent))
    }
}
