import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC

/// A stream whose header the peer acknowledged: ready for the protocol's own bytes.
///
/// Bytes the peer sent right behind its `ack` (or, on the accepting side, right behind the
/// header) are handed out first by `read()`, so nothing is lost between the protocol line and
/// the payload.
public final class PeerStream: Sendable {
    public let header: ProtocolHeader
    public let localID52: ID52
    public let remoteID52: ID52
    /// The underlying QUIC stream, for what this type does not forward.
    public let stream: QUICStream
    private let leftover: LockedValue<ByteBuffer?>
    /// Keeps the pool's connection from being closed as idle while this stream lives.
    private let lease: (any Sendable)?

    init(header: ProtocolHeader, local: ID52, remote: ID52, stream: QUICStream, leftover: ByteBuffer?, lease: (any Sendable)? = nil) {
        self.header = header
        self.localID52 = local
        self.remoteID52 = remote
        self.stream = stream
        self.leftover = LockedValue(leftover.flatMap { $0.readableBytes > 0 ? $0 : nil })
        self.lease = lease
    }

    /// The next bytes, or nil at the end of the stream.
    public func read() async throws -> ByteBuffer? {
        if let early = leftover.take() { return early }
        return try await stream.read()
    }

    /// Everything up to the end of the stream, at most `limit` bytes.
    public func readToEnd(limit: Int) async throws -> ByteBuffer {
        var all = leftover.take() ?? ByteBuffer()
        guard all.readableBytes <= limit else {
            await stream.stopSending(code: 0)
            throw QUICError(.tooMuchData, "stream \(stream.id) carried more than \(limit) bytes")
        }
        var rest = try await stream.readToEnd(limit: limit - all.readableBytes)
        all.writeBuffer(&rest)
        return all
    }

    public func write(_ buffer: ByteBuffer) async throws { try await stream.write(buffer) }
    public func write(_ bytes: some Sequence<UInt8>) async throws { try await stream.write(bytes) }
    public func finish() async throws { try await stream.finish() }
    public func reset(code: UInt64) async { await stream.reset(code: code) }
    public func stopSending(code: UInt64) async { await stream.stopSending(code: code) }
}
