/// OPENED's body: the stream the supervisor (or worker) opened and how many bytes of DATA the
/// opener may send on it before it needs CREDIT. 16 bytes: stream id (8), send window (4),
/// reserved (4, zero).
public struct OpenedBody: WireBody {
    public static let messageType = WireMessageType.opened
    public static let size = 16

    public var streamID: UInt64
    public var sendWindow: UInt32

    public init(streamID: UInt64, sendWindow: UInt32) {
        self.streamID = streamID
        self.sendWindow = sendWindow
    }

    public func encoded() -> [UInt8] {
        WireInteger.bytes(streamID) + WireInteger.bytes(sendWindow) + WireInteger.bytes(UInt32(0))
    }

    /// The reserved bytes are not checked: a later version may use them.
    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        try Self.requireSize(bytes, Self.size)
        self.init(streamID: WireInteger.uint64(bytes), sendWindow: WireInteger.uint32(bytes, at: 8))
    }
}
