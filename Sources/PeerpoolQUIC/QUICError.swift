import PeerpoolErrors

/// An error from the QUIC layer: a stable `code` to match on, and a message a user can act on.
///
/// Equality compares only the code, so callers and tests can write `error == QUICError(.wrongPeerKey)`
/// style matches with `error.code == .wrongPeerKey`.
public typealias QUICError = LayerError<QUICLayer>

/// Marks QUICError's errors (see ``LayerError``).
public enum QUICLayer {}

extension ErrorCode where Domain == QUICError {
    /// Binding or configuring the UDP socket failed.
    public static let bind = Self("bind")
    /// The endpoint has no identity that can serve this request.
    public static let noIdentity = Self("no_identity")
    /// The peer presented a key other than the one its ID52 names.
    public static let wrongPeerKey = Self("wrong_peer_key")
    /// The TLS handshake failed (alert, missing certificate, foreign ALPN, ...).
    public static let handshakeFailed = Self("handshake_failed")
    /// No handshake completed within the configured handshake timeout.
    public static let handshakeTimeout = Self("handshake_timeout")
    /// The connection is closed; the message carries the reason.
    public static let connectionClosed = Self("connection_closed")
    /// The peer reset the stream (RESET_STREAM) with an application code.
    public static let streamReset = Self("stream_reset")
    /// The peer asked us to stop sending on the stream (STOP_SENDING).
    public static let streamStopped = Self("stream_stopped")
    /// The stream was already finished or reset locally.
    public static let streamClosed = Self("stream_closed")
    /// More bytes arrived than the caller allowed.
    public static let tooMuchData = Self("too_much_data")
    /// A `QUICConfiguration` value is out of its range; the message names it and the range.
    public static let invalidConfiguration = Self("invalid_configuration")
    /// The endpoint's socket cannot send to the address (wrong family, broadcast, multicast,
    /// no route); the message names the address and the kernel's answer.
    public static let addressUnreachable = Self("address_unreachable")
    /// A connect asked for a relay path and the endpoint has no relay attached
    /// (`QUICEndpoint.attachRelay(_:)`).
    public static let noRelayPath = Self("no_relay_path")
    /// The endpoint is closed.
    public static let endpointClosed = Self("endpoint_closed")
    /// A connection or stream limit was reached.
    public static let limitReached = Self("limit_reached")
    /// ngtcp2 or GnuTLS reported an internal error.
    public static let `internal` = Self("internal")
}
