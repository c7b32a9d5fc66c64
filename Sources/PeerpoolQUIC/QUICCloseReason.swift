import PeerpoolIdentity

/// Why a connection ended. Every waiter on a closed connection fails with an error built from this.
public enum QUICCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// Nothing was received for the negotiated idle timeout.
    case idleTimeout
    /// The handshake did not complete within the handshake timeout.
    case handshakeTimeout
    /// The peer proved a key other than the one we dialled. `offered` is nil when it sent no
    /// usable ed25519 certificate.
    case wrongPeerKey(expected: ID52, offered: ID52?)
    /// TLS failed: wrong key, missing certificate, foreign ALPN, alert. The message says which.
    case handshakeFailed(String)
    /// The peer closed with an application error code (0 is a normal close).
    case peerClosed(applicationCode: UInt64, reason: String)
    /// The peer closed with a QUIC transport error.
    case peerTransportError(code: UInt64, reason: String)
    /// We closed it with this application code.
    case locallyClosed(applicationCode: UInt64)
    /// The endpoint (UDP socket) it lived on was closed.
    case endpointClosed
    /// A protocol or internal error on our side; the message says which.
    case error(String)

    public var description: String {
        switch self {
        case .idleTimeout: return "idle timeout"
        case .handshakeTimeout: return "handshake timed out"
        case .wrongPeerKey(let expected, let offered):
            return "expected the key of \(expected), but the peer offered "
                + (offered.map { "the key of \($0)" } ?? "no ed25519 certificate")
        case .handshakeFailed(let why): return "handshake failed: \(why)"
        case .peerClosed(let code, let reason):
            return "peer closed with application code \(code)" + (reason.isEmpty ? "" : " (\(reason))")
        case .peerTransportError(let code, let reason):
            return "peer closed with transport error 0x\(String(code, radix: 16))"
                + (reason.isEmpty ? "" : " (\(reason))")
        case .locallyClosed(let code): return "closed locally with application code \(code)"
        case .endpointClosed: return "endpoint closed"
        case .error(let why): return why
        }
    }

    /// The error handed to every request that was waiting on the connection.
    var error: QUICError {
        switch self {
        case .handshakeTimeout: return QUICError(.handshakeTimeout, "QUIC \(self)")
        case .wrongPeerKey: return QUICError(.wrongPeerKey, "QUIC handshake refused: \(self)")
        case .handshakeFailed: return QUICError(.handshakeFailed, "QUIC \(self)")
        case .endpointClosed: return QUICError(.endpointClosed, "QUIC endpoint closed")
        default: return QUICError(.connectionClosed, "QUIC connection closed: \(self)")
        }
    }
}
