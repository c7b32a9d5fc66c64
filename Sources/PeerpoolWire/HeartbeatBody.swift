/// HEARTBEAT's body (worker → supervisor): what the worker holds, for STATUS.
public struct HeartbeatBody: WireBody, Codable {
    public static let messageType = WireMessageType.heartbeat

    /// QUIC connections the worker's pool holds.
    public var connections: Int
    /// Streams open.
    public var streams: Int
    /// Opens in flight.
    public var requests: Int

    public init(connections: Int = 0, streams: Int = 0, requests: Int = 0) {
        self.connections = connections
        self.streams = streams
        self.requests = requests
    }

    public func encoded() -> [UInt8] { WireJSON.encode(self) }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        self = try WireJSON.decode(Self.self, bytes, Self.messageType)
    }
}
