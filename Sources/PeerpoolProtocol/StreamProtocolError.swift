import PeerpoolErrors

/// Errors of the stream protocol and the pool: a stable code and a message a user can act on.
public typealias StreamProtocolError = LayerError<StreamProtocolLayer>

/// Marks StreamProtocolError's errors (see ``LayerError``).
public enum StreamProtocolLayer {}

extension ErrorCode where Domain == StreamProtocolError {
    /// The header line is not valid UTF-8 JSON, or is too long.
    public static let malformedHeader = Self("malformed_header")
    /// The header names no protocol we know.
    public static let unknownProtocol = Self("unknown_protocol")
    /// The peer answered something other than `ack`.
    public static let notAcknowledged = Self("not_acknowledged")
    /// The peer does not serve this protocol.
    public static let refused = Self("protocol_refused")
    /// A ping did not get exactly `ack\npong\n` and the end of the stream.
    public static let badPong = Self("bad_pong")
}
