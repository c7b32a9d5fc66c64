import CZMQ

/// One received (or to-be-sent) ZeroMQ message part.
///
/// Owns a heap-allocated `zmq_msg_t` (allocated in init, closed and freed in deinit). Sending it
/// with `ZMQSocket.send(_:more:)` hands libzmq the content without a copy and leaves this frame
/// empty, which is how the supervisor forwards DATA bodies between processes. Not thread-safe:
/// it lives on the thread of the socket that made it.
public final class ZMQFrame {
    /// Owned; `zmq_msg_close` + deallocate in deinit. Never escapes this object.
    let message: UnsafeMutablePointer<zmq_msg_t>

    /// An empty frame, to receive into.
    public init() {
        message = .allocate(capacity: 1)
        zmq_msg_init(message)
    }

    /// A frame holding a copy of `bytes` (copied here: the pointer is not kept).
    public init(copying bytes: UnsafeRawBufferPointer) {
        message = .allocate(capacity: 1)
        zmq_msg_init_size(message, bytes.count)
        if bytes.count > 0, let source = bytes.baseAddress {
            zmq_msg_data(message).copyMemory(from: source, byteCount: bytes.count)
        }
    }

    /// A frame holding a copy of `bytes`. The copy happens inside `withUnsafeBytes`: the
    /// array's pointer is valid only there.
    public convenience init(_ bytes: [UInt8]) {
        self.init(size: bytes.count)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress, source.count > 0 {
                zmq_msg_data(message).copyMemory(from: base, byteCount: source.count)
            }
        }
    }

    /// A frame of `size` uninitialised bytes, filled by the caller.
    private init(size: Int) {
        message = .allocate(capacity: 1)
        zmq_msg_init_size(message, size)
    }

    deinit {
        zmq_msg_close(message)
        message.deallocate()
    }

    public var count: Int { zmq_msg_size(message) }

    /// The bytes, valid only inside `body` and only while the frame is not sent.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message)))
    }

    public var bytes: [UInt8] { withUnsafeBytes { [UInt8]($0) } }

    /// The file descriptor of the connection this frame arrived on (libzmq's ZMQ_SRCFD): how the
    /// supervisor ties a client to the disconnect events of its socket monitor.
    public var sourceDescriptor: Int32 { zmq_msg_get(message, ZMQ_SRCFD) }
}
