/// SHUTDOWN's body (supervisor → worker): how long the worker may finish what runs before it
/// exits.
public struct ShutdownBody: WireBody, Codable {
    public static let messageType = WireMessageType.shutdown
    /// The grace a worker takes when the body names none.
    public static let defaultGrace = Duration.seconds(5)

    /// `grace_ms`; nil when the body leaves it out.
    public var graceMilliseconds: Int?

    public init(graceMilliseconds: Int?) { self.graceMilliseconds = graceMilliseconds }

    enum CodingKeys: String, CodingKey { case graceMilliseconds = "grace_ms" }

    /// The grace period, negative values read as zero.
    public var grace: Duration { graceMilliseconds.map { .milliseconds(max(0, $0)) } ?? Self.defaultGrace }

    public func encoded() -> [UInt8] { WireJSON.encode(self) }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        self = try WireJSON.decode(Self.self, bytes, Self.messageType)
    }
}
