/// Byte 1 of a header: what the message is. A struct, not an enum, so an unknown type read off
/// the wire is still a value we can name in an `unknown_type` error.
public struct WireMessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Requests (client → supervisor → worker).
    public static let open = WireMessageType(rawValue: 0x01)
    public static let cancel = WireMessageType(rawValue: 0x02)
    public static let status = WireMessageType(rawValue: 0x03)

    // Stream messages, both directions.
    public static let data = WireMessageType(rawValue: 0x10)
    public static let finish = WireMessageType(rawValue: 0x11)
    public static let reset = WireMessageType(rawValue: 0x12)
    public static let credit = WireMessageType(rawValue: 0x13)
    public static let aborted = WireMessageType(rawValue: 0x14)

    // Between supervisor and workers only.
    public static let hello = WireMessageType(rawValue: 0x40)
    public static let heartbeat = WireMessageType(rawValue: 0x41)
    public static let shutdown = WireMessageType(rawValue: 0x42)

    // Answers to requests.
    public static let opened = WireMessageType(rawValue: 0x81)
    public static let error = WireMessageType(rawValue: 0x82)
    public static let statusReply = WireMessageType(rawValue: 0x83)

    public var description: String {
        switch self {
        case .open: "OPEN"
        case .cancel: "CANCEL"
        case .status: "STATUS"
        case .data: "DATA"
        case .finish: "FINISH"
        case .reset: "RESET"
        case .credit: "CREDIT"
        case .aborted: "ABORTED"
        case .hello: "HELLO"
        case .heartbeat: "HEARTBEAT"
        case .shutdown: "SHUTDOWN"
        case .opened: "OPENED"
        case .error: "ERROR"
        case .statusReply: "STATUS_REPLY"
        default: "type 0x" + String(rawValue, radix: 16)
        }
    }
}
