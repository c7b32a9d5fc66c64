/// CREDIT's body, both directions: bytes consumed (client → supervisor) or more bytes the client
/// may send (supervisor → client). 4 bytes. Whether it fits the stream's window is the
/// receiver's check, not the decoder's.
public struct CreditBody: WireBody {
    public static let messageType = WireMessageType.credit
    public static let size = 4

    public var bytes: UInt32

    public init(bytes: UInt32) { self.bytes = bytes }

    public func encoded() -> [UInt8] { WireInteger.bytes(bytes) }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        try Self.requireSize(bytes, Self.size)
        self.init(bytes: WireInteger.uint32(bytes))
    }
}
