import Logging
import NIOCore
import PeerpoolPool

/// What `peerpool listen` serves besides `Ping` (which the acceptor answers itself): three
/// `Generic` protocols for trying a peer out by hand and for benchmarks.
///
/// - `{"Generic":"echo"}`: every chunk is sent back; our side finishes when the peer's does.
/// - `{"Generic":"source"}` + extra line `<n>`: we send n bytes, then finish.
/// - `{"Generic":"sink"}`: we count what the peer sends until it finishes, then answer the
///   count as one decimal line and finish.
///
/// Errors end only the stream they happen on: a client that goes away mid-transfer is normal.
/// Nothing is buffered beyond one chunk: each write waits for the stream's back-pressure.
enum ListenServices {
    static let echo = StreamProtocol.generic("echo")
    static let source = StreamProtocol.generic("source")
    static let sink = StreamProtocol.generic("sink")

    /// The acceptor's view: which protocols go to `serve`, and that `source` has an extra line.
    static var acceptorConfiguration: AcceptorConfiguration {
        var configuration = AcceptorConfiguration(protocols: [echo, source, sink])
        configuration.protocolsWithExtraLine = [source]
        // echo, source and sink never block: run them on the socket's loop.
        configuration.runHandlersOnEventLoop = true
        return configuration
    }

    /// Bytes of one `source` write: large enough to keep a loopback path busy.
    private static let sourceBlock = ByteBuffer(repeating: UInt8(ascii: "a"), count: 64 * 1024)

    /// Serves one acknowledged stream until it is done or fails.
    static func serve(_ incoming: IncomingStream, logger: Logger) async {
        let stream = incoming.stream
        do {
            switch incoming.header.protocol {
            case Self.echo:
                while let chunk = try await stream.read() { try await stream.write(chunk) }
                try await stream.finish()
            case Self.source:
                guard let text = incoming.header.extra, let count = UInt64(text) else {
                    logger.debug(
                        "source stream without a byte count",
                        metadata: ["stream.extra": "\(incoming.header.extra ?? "")"])
                    await stream.reset(code: ProtocolErrorCode.malformedHeader)
                    await stream.stopSending(code: ProtocolErrorCode.malformedHeader)
                    return
                }
                // What the peer sends is not part of this protocol; don't let it pile up.
                await stream.stopSending(code: 0)
                var remaining = count
                while remaining > 0 {
                    let length = Int(min(UInt64(sourceBlock.readableBytes), remaining))
                    try await stream.write(sourceBlock.getSlice(at: sourceBlock.readerIndex, length: length)!)
                    remaining -= UInt64(length)
                }
                try await stream.finish()
            case Self.sink:
                var total = 0
                while let chunk = try await stream.read() { total += chunk.readableBytes }
                try await stream.write(ByteBuffer(string: "\(total)\n"))
                try await stream.finish()
            default:
                // The acceptor hands over only the protocols configured above.
                await stream.reset(code: ProtocolErrorCode.abandoned)
            }
        } catch {
            logger.debug("stream ended with an error", metadata: ["stream.protocol": "\(incoming.header.protocol)", "error": "\(error)"])
        }
    }
}
