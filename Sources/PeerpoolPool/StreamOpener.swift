import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC

/// The opening side of fastn's stream protocol on one connection.
enum StreamOpener {
    /// Opens a stream, sends `header`, and returns once the peer answered `ack`.
    /// Anything else is `not_acknowledged` (or `protocol_refused`) naming what arrived.
    static func open(
        _ header: ProtocolHeader, on connection: QUICConnection, lease: (any Sendable)? = nil
    ) async throws -> PeerStream {
        let bytes = try header.encoded()
        let stream = try await connection.openStream()
        do {
            try await stream.write(bytes)
            var reader = LineReader(stream: stream)
            let answer: String
            do {
                answer = try await reader.nextLine(limit: 1024)
            } catch LineReader.Failure.endOfStream(let partial) {
                throw StreamProtocolError(.notAcknowledged, "\(connection.remoteID52) ended the stream instead of acknowledging \(header.protocol)" + (partial.isEmpty ? "" : ": \(partial.debugDescription)"))
            } catch let error as QUICError where [.streamReset, .streamStopped, .streamClosed].contains(error.code) {
                throw StreamProtocolError(.notAcknowledged, "\(connection.remoteID52) dropped the stream instead of acknowledging \(header.protocol): \(error.message)")
            } catch is LineReader.Failure {
                throw StreamProtocolError(.notAcknowledged, "\(connection.remoteID52) answered \(header.protocol) with more than 1 KiB without a newline, or with bytes that are not UTF-8")
            }
            if answer.hasPrefix(ProtocolWords.refusedPrefix) {
                throw StreamProtocolError(.refused, "\(connection.remoteID52) refused \(header.protocol): \(answer.dropFirst(ProtocolWords.refusedPrefix.count))")
            }
            guard answer == "ack" else {
                throw StreamProtocolError(.notAcknowledged, "expected \"ack\" from \(connection.remoteID52) for \(header.protocol), got \(answer.prefix(200).debugDescription)")
            }
            return PeerStream(
                header: header, local: connection.localID52, remote: connection.remoteID52, stream: stream,
                leftover: reader.buffered, lease: lease)
        } catch {
            // The stream is useless now; say so to the peer instead of leaving it half-open.
            await stream.reset(code: ProtocolErrorCode.abandoned)
            await stream.stopSending(code: ProtocolErrorCode.abandoned)
            throw error
        }
    }

    /// fastn's ping: a `Ping` stream that must read exactly `ack\npong\n`, then its end.
    static func ping(_ connection: QUICConnection) async throws {
        let stream = try await connection.openStream()
        do {
            try await stream.write(try ProtocolHeader(.ping).encoded())
            try await stream.finish()
            let answer = try await stream.readToEnd(limit: 64)
            guard Array(answer.readableBytesView) == ProtocolWords.ack + ProtocolWords.pong else {
                throw StreamProtocolError(.badPong, "ping to \(connection.remoteID52) got \(String(buffer: answer).debugDescription), expected \"ack\\npong\\n\"")
            }
        } catch let error as QUICError where error.code == .tooMuchData {
            throw StreamProtocolError(.badPong, "ping to \(connection.remoteID52) got more than \"ack\\npong\\n\"")
        }
    }
}

/// Application error codes peerpool puts on streams it gives up (RESET_STREAM / STOP_SENDING).
public enum ProtocolErrorCode {
    /// The opener gave up the stream (no ack, timeout, cancelled).
    public static let abandoned: UInt64 = 0x70
    /// The header line was longer than 64 KiB.
    public static let headerTooLong: UInt64 = 0x71
    /// The header line was not UTF-8 JSON naming a protocol.
    public static let malformedHeader: UInt64 = 0x72
    /// The header did not arrive within the acceptor's header timeout.
    public static let headerTimeout: UInt64 = 0x73
}
