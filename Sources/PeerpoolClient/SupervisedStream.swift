import NIOCore
import PeerpoolErrors
import PeerpoolIdentity
import PeerpoolProtocol
import PeerpoolWire

/// A stream to a peer, opened by a supervisor's worker: `PeerStream`'s twin for applications
/// that use `peerpool serve` through a `SupervisorClient`.
///
/// Its bytes travel as DATA frames through the supervisor, flow-controlled both ways
/// (docs/wire-protocol.md, *Flow control*): reads hand out what arrived, and return CREDIT to
/// the supervisor as they consume it; writes suspend while the send credit is used up, so a
/// peer that reads slowly slows the writer instead of filling a buffer anywhere.
///
/// One reader and one writer at a time: a second concurrent `read()`, or a `write()`/`finish()`
/// while another `write()` waits for credit, throws `stream_busy`. Reading and writing may run
/// concurrently in two tasks.
///
/// Cancelling a task waiting in `read()` throws `CancellationError` and loses nothing. Cancelling
/// one waiting in `write()` throws `CancellationError` too; if part of that write already went
/// out, the stream is reset (code 0), since the peer would otherwise see a cut-off message.
///
/// Dropping the last reference before the stream is over (both sides finished, or reset, or
/// aborted) resets it with code 0, like closing a socket. The stream keeps its client alive.
public final class SupervisedStream: Sendable {
    public let header: ProtocolHeader
    public let remoteID52: ID52
    /// The stream id the supervisor chose (unique for the supervisor's lifetime).
    public let id: UInt64
    let state: SupervisedStreamState
    private let client: SupervisorClient

    init(header: ProtocolHeader, remoteID52: ID52, state: SupervisedStreamState, client: SupervisorClient) {
        self.header = header
        self.remoteID52 = remoteID52
        self.id = state.id
        self.state = state
        self.client = client
    }

    deinit {
        let state = state
        client.submitIfOpen { state.release() }
    }

    /// The next bytes from the peer, or nil once the peer finished its side (every later call
    /// returns nil too).
    ///
    /// - Throws: `WireError` when the stream was aborted (the supervisor's code: `worker_crashed`,
    ///   `stream_reset`, ...; bytes not yet read are dropped), `supervisor_lost`,
    ///   `client_closed`, `stream_closed` after `reset(code:)`, `protocol_violation` if the
    ///   supervisor overran the receive window; `CancellationError`.
    public func read() async throws -> ByteBuffer? {
        let state = state
        let token = client.makeID()
        return try await client.perform { continuation in
            state.read(token: token, continuation)
        } onCancel: {
            state.cancelRead(token: token)
        }
    }

    /// Everything until the peer finishes, at most `limit` bytes; beyond that the stream is
    /// reset (code 0) and this throws `too_much_data`.
    public func readToEnd(limit: Int) async throws -> ByteBuffer {
        var all = ByteBuffer()
        while var chunk = try await read() {
            guard all.readableBytes + chunk.readableBytes <= limit else {
                await reset(code: 0)
                throw WireError(.tooMuchData, "stream \(id) carried more than \(limit) bytes", id: id)
            }
            all.writeBuffer(&chunk)
        }
        return all
    }

    /// Sends `buffer` as DATA frames; returns once all of it is handed to the socket, suspending
    /// while the send credit is exhausted.
    ///
    /// - Throws: the stream's failure (`worker_crashed`, `supervisor_lost`, ...),
    ///   `stream_closed` after `finish()` or `reset(code:)`, `stream_busy`, `CancellationError`.
    public func write(_ buffer: ByteBuffer) async throws {
        guard buffer.readableBytes > 0 else { return }
        let state = state
        let token = client.makeID()
        try await client.perform { continuation in
            state.write(token: token, buffer, continuation)
        } onCancel: {
            state.cancelWrite(token: token)
        }
    }

    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await write(ByteBuffer(bytes: bytes))
    }

    /// Ends our side (FINISH) after everything written. Reading goes on until the peer finishes.
    public func finish() async throws {
        let state = state
        try await client.performUncancellable { continuation in
            state.finish(continuation)
        }
    }

    /// Abandons the stream with RESET and a QUIC application error code, unless it is already
    /// over. Unread bytes are dropped; a waiting read or write fails with `stream_closed`.
    public func reset(code: UInt64) async {
        let state = state
        try? await client.performUncancellable { continuation in
            state.reset(code: code)
            continuation.resume()
        }
    }
}

extension ErrorCode where Domain == WireError {
    /// Client side only: `readToEnd(limit:)` met more bytes than its limit.
    public static let tooMuchData = Self("too_much_data")
    /// Client side only: this client already ended the stream's direction (`finish()`,
    /// `reset(code:)`, dropping the stream).
    public static let streamClosed = Self("stream_closed")
    /// Client side only: a second reader, or a second writer, on one stream at the same time.
    public static let streamBusy = Self("stream_busy")
}

extension SupervisedStream: PeerByteStream {}

extension SupervisorClient: StreamProvider {
    /// `StreamProvider`'s form of `getStream`, with the configured request timeout.
    public func getStream(_ header: ProtocolHeader, to peer: PeerAddress, from local: ID52?) async throws -> SupervisedStream {
        try await getStream(header, to: peer, from: local, timeout: nil)
    }
}
