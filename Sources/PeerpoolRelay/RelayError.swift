import PeerpoolDiscovery

/// Why the relay client is not (or no longer) connected: a stable snake_case ``Code`` to match
/// on and a sentence that says what happened and what to check. Equality compares only the code.
/// Frame-level causes from ``RelayClientStateMachine`` arrive as ``DiscoveryError`` and are kept
/// in ``underlying``.
public struct RelayError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The URL is not `http://host[:port]` or `https://host[:port]`.
        public static let invalidRelayURL = Code("invalid_relay_url")
        /// The TCP (or TLS) connection to the relay failed: wrong host or port, relay down.
        public static let relayUnreachable = Code("relay_unreachable")
        /// The TLS handshake with an `https://` relay failed: an untrusted or expired
        /// certificate, a name that does not match (``IrohRelayClient/Configuration/tls``).
        public static let relayTLSFailed = Code("relay_tls_failed")
        /// The server answered `GET /relay` without switching to WebSocket: not an iroh relay,
        /// or a proxy in the way.
        public static let relayUpgradeFailed = Code("relay_upgrade_failed")
        /// Connecting, upgrading and the challenge handshake did not finish in time.
        public static let relayHandshakeTimeout = Code("relay_handshake_timeout")
        /// The relay refused this endpoint's handshake; the message carries the relay's reason.
        public static let relayRefused = Code("relay_refused")
        /// A ping to the relay went unanswered: the connection is considered dead.
        public static let relayPingTimeout = Code("relay_ping_timeout")
        /// The relay sent something that is not a valid relay frame, or a frame out of place.
        public static let relayFrameMalformed = Code("relay_frame_malformed")
        /// The relay closed the connection, or the network dropped it.
        public static let relayConnectionLost = Code("relay_connection_lost")
        /// The relay announced a restart; the client reconnects when it said to.
        public static let relayRestarting = Code("relay_restarting")
        /// ``IrohRelayClient/close()`` was called.
        public static let relayClosed = Code("relay_closed")
        /// `GET /ping` failed or did not answer 2xx (``IrohRelayClient/probe(url:timeout:)``).
        public static let relayProbeFailed = Code("relay_probe_failed")
    }

    public let code: Code
    public let message: String
    /// The lower-level cause (a NIO channel error, a ``DiscoveryError``), if any.
    public let underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }
    public static func == (a: RelayError, b: RelayError) -> Bool { a.code == b.code }

    /// The relay client's view of a state machine's reason; `wasConnected` tells a ping timeout
    /// from a handshake timeout (the machine uses one code for both).
    init(_ reason: DiscoveryError, wasConnected: Bool) {
        let code: Code = switch reason.code {
        case .relayRefused: .relayRefused
        case .relayTimeout: wasConnected ? .relayPingTimeout : .relayHandshakeTimeout
        case .relayRestarting: .relayRestarting
        case .relayStopped: .relayClosed
        default: .relayFrameMalformed
        }
        self.init(code, reason.message, underlying: reason)
    }
}
