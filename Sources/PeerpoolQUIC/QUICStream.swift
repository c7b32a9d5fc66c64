import NIOCore

/// One bidirectional QUIC stream.
///
/// All calls hop to the connection's event loop. Reads hand out whatever has arrived (one
/// reader at a time); writes suspend while the stream already holds
/// `QUICConfiguration.streamSendBufferLimit` unacknowledged bytes, so a peer that stops reading
/// stalls the writer instead of growing memory. Dropping the handle of a half-used stream shuts
/// it down with code 0.
public final class QUICStream: Sendable {
    let core: QUICConnectionCore
    /// The QUIC stream ID.
    public let id: Int64

    init(core: QUICConnectionCore, id: Int64) {
        self.core = core
        self.id = id
    }

    deinit {
        let core = self.core
        let id = self.id
        core.eventLoop.execute { core.assumeIsolated { $0.release(id) } }
    }

    /// The next bytes that arrived, or nil once the peer finished the stream.
    /// Throws `.streamReset` if the peer reset it, or the connection's close reason.
    public func read() async throws -> ByteBuffer? {
        try await core.read(id)
    }

    /// Everything until the peer finishes the stream. Throws `.tooMuchData` (and stops reading
    /// with code 0) once more than `limit` bytes arrive, so a peer cannot make us buffer without
    /// bound.
    public func readToEnd(limit: Int) async throws -> ByteBuffer {
        var all = ByteBuffer()
        while var chunk = try await read() {
            guard all.readableBytes + chunk.readableBytes <= limit else {
                await stopSending(code: 0)
                throw QUICError(.tooMuchData, "stream \(id) carried more than \(limit) bytes")
            }
            all.writeBuffer(&chunk)
        }
        return all
    }

    /// Queues `buffer` for sending; suspends while the stream's send buffer is full.
    public func write(_ buffer: ByteBuffer) async throws {
        try await core.write(id, buffer)
    }

    /// Queues bytes for sending.
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await core.write(id, ByteBuffer(bytes: bytes))
    }

    /// Ends our direction of the stream (FIN) after what was written.
    public func finish() async throws {
        try await core.finish(id)
    }

    /// Abandons our direction with RESET_STREAM and an application code; unsent bytes are dropped.
    public func reset(code: UInt64) async {
        await core.reset(id, code: code)
    }

    /// Asks the peer to stop sending (STOP_SENDING) with an application code.
    public func stopSending(code: UInt64) async {
        await core.stopSending(id, code: code)
    }
}
