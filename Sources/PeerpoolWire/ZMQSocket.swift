import CZMQ

/// A libzmq socket, used only on the thread of the `ZMQReactor` that watches it (libzmq sockets
/// are not thread-safe; the reactor checks the thread in debug builds).
///
/// Owns the socket handle (`zmq_socket`; `zmq_close` in `close()` or deinit, with linger 0 so a
/// dead peer never holds up shutdown).
public final class ZMQSocket {
    public struct Kind: Sendable, Hashable {
        let rawValue: Int32
        public static let router = Kind(rawValue: ZMQ_ROUTER)
        public static let dealer = Kind(rawValue: ZMQ_DEALER)
        public static let pair = Kind(rawValue: ZMQ_PAIR)
    }

    /// What `send` did with a message part.
    public enum SendResult: Sendable, Equatable {
        case sent
        /// The peer's queue is at its high-water mark (EAGAIN).
        case wouldBlock
        /// A ROUTER with ROUTER_MANDATORY has no peer with that routing id (EHOSTUNREACH).
        case unroutable
        case failed(Int32)
    }

    /// Owned; closed once.
    public private(set) var handle: UnsafeMutableRawPointer?
    public let kind: Kind

    public init(_ context: ZMQContext, _ kind: Kind) throws {
        guard let handle = zmq_socket(context.handle, kind.rawValue) else {
            throw ZMQError("zmq_socket")
        }
        self.handle = handle
        self.kind = kind
        try setOption(ZMQ_LINGER, 0)
    }

    deinit { close() }

    public func close() {
        guard let handle else { return }
        zmq_close(handle)
        self.handle = nil
    }

    public func setOption(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, int64 value: Int64) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// Receives one whole multipart message without waiting: nil when none is queued. Bounded:
    /// at most `maxParts` parts are kept; the rest of an over-long message is read and dropped,
    /// and `truncated` says so.
    public func receive(maxParts: Int = 4) throws -> (frames: [ZMQFrame], truncated: Bool)? {
        var frames: [ZMQFrame] = []
        var truncated = false
        while true {
            let frame = ZMQFrame()
            if zmq_msg_recv(frame.message, handle, ZMQ_DONTWAIT) < 0 {
                let error = zmq_errno()
                if error == EAGAIN && frames.isEmpty { return nil }
                if error == EINTR { continue }
                throw ZMQError("zmq_msg_recv", errno: error)
            }
            let more = zmq_msg_more(frame.message) != 0
            if frames.count < maxParts { frames.append(frame) } else { truncated = true }
            if !more { return (frames, truncated) }
        }
    }

    /// Sends a copy of `bytes` as one part.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, more: Bool) -> SendResult {
        let flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)
        while true {
            if zmq_send(handle, bytes.baseAddress, bytes.count, flags) >= 0 { return .sent }
            let error = zmq_errno()
            if error != EINTR { return Self.result(error) }
        }
    }

    @discardableResult
    public func send(_ bytes: [UInt8], more: Bool) -> SendResult {
        bytes.withUnsafeBytes { send($0, more: more) }
    }

    @discardableResult
    public func send(_ header: WireHeader, more: Bool) -> SendResult {
        withUnsafeTemporaryAllocation(byteCount: WireHeader.size, alignment: 8) { buffer in
            header.encode(into: buffer)
            return send(UnsafeRawBufferPointer(buffer), more: more)
        }
    }

    /// Sends `frame`'s content without copying it; on success the frame is left empty.
    @discardableResult
    public func send(_ frame: ZMQFrame, more: Bool) -> SendResult {
        let flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)
        while true {
            if zmq_msg_send(frame.message, handle, flags) >= 0 { return .sent }
            let error = zmq_errno()
            if error != EINTR { return Self.result(error) }
        }
    }

    private static func result(_ error: Int32) -> SendResult {
        switch error {
        case EAGAIN: .wouldBlock
        case EHOSTUNREACH: .unroutable
        default: .failed(error)
        }
    }

    /// Starts libzmq's monitor for `events` and returns the PAIR socket that receives them. The
    /// caller watches it on the same reactor and reads events with `ZMQMonitorEvent.read`.
    public func monitor(_ context: ZMQContext, events: Int32, name: String) throws -> ZMQSocket {
        let endpoint = "inproc://monitor-\(name)"
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else {
            throw ZMQError("zmq_socket_monitor")
        }
        let pair = try ZMQSocket(context, .pair)
        // No high-water mark on the event pipe (inproc adds both ends' marks; 0 on one end
        // makes it unlimited): libzmq's I/O thread would otherwise block, or events be lost,
        // when connections churn faster than the reactor reads, and a lost ACCEPTED or
        // DISCONNECTED would misattribute clients. Events are small and read every turn.
        try pair.setOption(ZMQ_RCVHWM, 0)
        try pair.connect(endpoint)
        return pair
    }
}

/// One event from a socket monitor: libzmq sends a 6-byte frame (16-bit event, 32-bit value, in
/// host order) and a frame with the endpoint.
public struct ZMQMonitorEvent: Sendable {
    public var event: Int32
    /// For connect/accept/disconnect events: the file descriptor of the connection.
    public var value: Int32

    public static let connected = Int32(ZMQ_EVENT_CONNECTED)
    public static let accepted = Int32(ZMQ_EVENT_ACCEPTED)
    public static let disconnected = Int32(ZMQ_EVENT_DISCONNECTED)

    /// Reads the next queued event, nil when none is.
    public static func read(_ monitor: ZMQSocket) throws -> ZMQMonitorEvent? {
        guard let (frames, _) = try monitor.receive() else { return nil }
        guard let first = frames.first, first.count >= 6 else { return nil }
        return first.withUnsafeBytes { bytes in
            let event = bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self)
            let value = bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
            return ZMQMonitorEvent(event: Int32(event), value: Int32(bitPattern: value))
        }
    }
}
