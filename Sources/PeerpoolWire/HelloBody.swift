/// HELLO's body (worker → supervisor): which shard and generation the worker is, and its pid.
public struct HelloBody: WireBody, Codable {
    public static let messageType = WireMessageType.hello

    public var index: Int
    public var generation: Int
    public var pid: Int32

    public init(index: Int, generation: Int, pid: Int32) {
        self.index = index
        self.generation = generation
        self.pid = pid
    }

    public func encoded() -> [UInt8] { WireJSON.encode(self) }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        self = try WireJSON.decode(Self.self, bytes, Self.messageType)
    }
}
