/// An error from the QUIC layer: a stable `code` to match on, and a message a user can act on.
///
/// Equality compares only the code, so callers and tests can write `error == QUICError(.wrongPeerKey)`
/// style matches with `error.code == .wrongPeerKey`.
public struct QUICError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Open set of error kinds. New codes are added as static members, never breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Binding or configuring the UDP socket failed.
        public static let bind = Code("bind")
        /// The endpoint has no identity that can serve this request.
        public static let noIdentity = Code("no_identity")
        /// The peer presented a key other than the one its ID52 names.
        public static let wrongPeerKey = Code("wrong_peer_key")
        /// The TLS handshake failed (alert, missing certificate, foreign ALPN, ...).
        public static let handshakeFailed = Code("handshake_failed")
        /// No handshake completed within the configured handshake timeout.
        public static let handshakeTimeout = Code("handshake_timeout")
        /// The connection is closed; the message carries the reason.
        public static let connectionClosed = Code("connection_closed")
        /// The peer reset the stream (RESET_STREAM) with an application code.
        public static let streamReset = Code("stream_reset")
        /// The peer asked us to stop sending on the stream (STOP_SENDING).
        public static let streamStopped = Code("stream_stopped")
        /// The stream was already finished or reset locally.
        public static let streamClosed = Code("stream_closed")
        /// More bytes arrived than the caller allowed.
        public static let tooMuchData = Code("too_much_data")
        /// A `QUICConfiguration` value is out of its range; the message names it and the range.
        public static let invalidConfiguration = Code("invalid_configuration")
        /// The endpoint's socket cannot send to the address (wrong family, broadcast, multicast,
        /// no route); the message names the address and the kernel's answer.
        public static let addressUnreachable = Code("address_unreachable")
        /// A connect asked for a relay path and the endpoint has no relay attached
        /// (`QUICEndpoint.attachRelay(_:)`).
        public static let noRelayPath = Code("no_relay_path")
        /// The endpoint is closed.
        public static let endpointClosed = Code("endpoint_closed")
        /// A connection or stream limit was reached.
        public static let limitReached = Code("limit_reached")
        /// ngtcp2 or GnuTLS reported an internal error.
        public static let `internal` = Code("internal")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: QUICError, rhs: QUICError) -> Bool { lhs.code == rhs.code }
}
