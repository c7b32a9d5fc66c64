/// RESET's body: the QUIC application error code the stream is reset with. 8 bytes; a code over
/// 2^62-1 is refused (`malformed_frame`): QUIC codes are 62-bit varints and ngtcp2 aborts the
/// process on a larger one.
public struct ResetBody: WireBody {
    public static let messageType = WireMessageType.reset
    public static let size = 8
    /// Code 0, what peerpool resets with when no one chose a code (an abandoned stream).
    public static let abandoned = ResetBody(code: 0)

    public var code: UInt64

    /// `code` is not checked here: encoding an out-of-range one makes a body the receiver refuses.
    public init(code: UInt64) { self.code = code }

    public func encoded() -> [UInt8] { WireInteger.bytes(code) }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        try Self.requireSize(bytes, Self.size)
        let code = WireInteger.uint64(bytes)
        guard code <= WireInteger.maxQUICErrorCode else {
            throw WireError(.malformedFrame, "RESET's code \(code) is over \(WireInteger.maxQUICErrorCode) (2^62-1), the largest QUIC application error code")
        }
        self.init(code: code)
    }
}
