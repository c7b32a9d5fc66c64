import PeerpoolDiscovery
import PeerpoolErrors

/// Why the relay client is not (or no longer) connected: a stable snake_case ``Code`` to match
/// on and a sentence that says what happened and what to check. Equality compares only the code.
/// Frame-level causes from ``RelayClientStateMachine`` arrive as ``DiscoveryError`` and are kept
/// in ``underlying``.
public struct RelayError: PeerpoolError {
    public typealias Code = ErrorCode<RelayError>

    public let code: Code
    public let message: String
    /// The lower-level cause (a NIO channel error, a ``DiscoveryError``), if any.
    public let underlying: (any Error)?
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.location = SourceLocation(fileID: file, line: line)
    }

    /// The relay client's view of a state machine's reason; `wasConnected` tells a ping timeout
    /// from a handshake timeout (the machine uses one code for both).
    init(_ reason: DiscoveryError, wasConnected: Bool, file: String = #fileID, line: Int = #line) {
        let code: Code = switch reason.code {
        case .relayRefused: .relayRefused
        case .relayTimeout: wasConnected ? .relayPingTimeout : .relayHandshakeTimeout
        case .relayRestarting: .relayRestarting
        case .relayStopped: .relayClosed
        default: .relayFrameMalformed
        }
        self.init(code, reason.message, underlying: reason, file: file, line: line)
    }
}

extension ErrorCode where Domain == RelayError {
    /// The URL is not `http://host[:port]` or `https://host[:port]`.
    public static let invalidRelayURL = Self("invalid_relay_url")
    /// The TCP connection to the relay failed: wrong host or port, relay down.
    public static let relayUnreachable = Self("relay_unreachable")
    /// The TLS handshake with an `https://` relay failed: an untrusted or expired certificate,
    /// a name that does not match (``IrohRelayClient/Configuration/tls``).
    public static let relayTLSFailed = Self("relay_tls_failed")
    /// The server answered `GET /relay` without switching to WebSocket: not an iroh relay, or
    /// a proxy in the way.
    public static let relayUpgradeFailed = Self("relay_upgrade_failed")
    /// Connecting, upgrading and the challenge handshake did not finish in time.
    public static let relayHandshakeTimeout = Self("relay_handshake_timeout")
    /// The relay refused this endpoint's handshake; the message carries the relay's reason.
    public static let relayRefused = Self("relay_refused")
    /// A ping to the relay went unanswered: the connection is considered dead.
    public static let relayPingTimeout = Self("relay_ping_timeout")
    /// The relay sent something that is not a valid relay frame, or a frame out of place.
    public static let relayFrameMalformed = Self("relay_frame_malformed")
    /// The relay closed the connection, or the network dropped it.
    public static let relayConnectionLost = Self("relay_connection_lost")
    /// The relay announced a restart; the client reconnects when it said to.
    public static let relayRestarting = Self("relay_restarting")
    /// ``IrohRelayClient/close()`` was called.
    public static let relayClosed = Self("relay_closed")
    /// `GET /ping` failed or did not answer 2xx (``IrohRelayClient/probe(url:timeout:)``).
    public static let relayProbeFailed = Self("relay_probe_failed")
}
