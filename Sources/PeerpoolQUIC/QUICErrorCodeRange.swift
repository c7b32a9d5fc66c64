/// QUIC error codes (RESET_STREAM, STOP_SENDING, CONNECTION_CLOSE) are 62-bit variable-length
/// integers (RFC 9000 §16). ngtcp2 asserts on anything larger and aborts the whole process, so no
/// code reaches it unchecked: the edges (wire protocol, command line) refuse larger codes with an
/// error, and this layer, whose reset and close calls cannot fail, sends the largest valid code
/// instead of aborting.
public enum QUICErrorCodeRange {
    /// The largest code QUIC can carry: 2^62 - 1.
    public static let max: UInt64 = (1 << 62) - 1

    /// Whether `code` fits in a QUIC error code.
    public static func contains(_ code: UInt64) -> Bool { code <= max }

    /// `code` if it fits, else `max`.
    static func clamped(_ code: UInt64) -> UInt64 { Swift.min(code, max) }
}
