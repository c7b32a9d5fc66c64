import NIOCore
import PeerpoolIdentity
import PeerpoolProtocol

/// OPEN's JSON body (docs/wire-protocol.md): which peer, as whom, which protocol, how long, and
/// the opener's receive window.
///
/// The supervisor reads it to pick the shard and check the limits; the worker reads it again to
/// open the stream (the body is forwarded unchanged, no re-encoding on the hop).
public struct OpenRequest: WireBody {
    public static let messageType = WireMessageType.open

    public var remote: ID52
    /// `host:port` (IPv6 `[::1]:port`), or nil to use the worker's address book.
    public var address: String?
    /// Which of the supervisor's identities to connect as; nil for its first.
    public var local: ID52?
    public var header: ProtocolHeader
    /// The whole request's deadline; nil for the supervisor's default.
    public var timeout: Duration?
    /// Bytes of DATA the opener can take before it returns CREDIT; nil for the default.
    public var window: Int?
    /// `address` read once (nil if absent or not `host:port`): the supervisor checks it and the
    /// worker dials it, per open.
    private var socketAddress: SocketAddress?

    public init(remote: ID52, address: String? = nil, local: ID52? = nil, header: ProtocolHeader, timeout: Duration? = nil, window: Int? = nil) {
        self.remote = remote
        self.address = address
        self.socketAddress = address.flatMap { PeerAddress.socketAddress(hostPort: $0) }
        self.local = local
        self.header = header
        self.timeout = timeout
        self.window = window
    }

    public func encoded() -> [UInt8] {
        var fields: [(key: String, value: JSONValue)] = [
            ("remote", .string(remote.description)),
            ("protocol", header.protocol.jsonValue),
        ]
        if let address { fields.append(("address", .string(address))) }
        if let local { fields.append(("self", .string(local.description))) }
        if let extra = header.extra { fields.append(("extra", .string(extra))) }
        if let timeout { fields.append(("timeout_ms", .number(String(Self.milliseconds(timeout))))) }
        if let window { fields.append(("window", .number(String(window)))) }
        return Array(JSONValue.object(fields).json.utf8)
    }

    /// The peer to hand the worker's pool (the address was checked when the body was read).
    public func peerAddress() -> PeerAddress {
        PeerAddress(remote, at: socketAddress)
    }

    /// Reads a body within the document's limits (timeout 600 s, window 16 MiB).
    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        try self.init(jsonBody: bytes)
    }

    /// What a lower layer's error says, without its code: the answer carries `bad_request`,
    /// and `bad_request: … malformed_header: …` would name two codes.
    static func reason(_ error: any Error) -> String {
        (error as? StreamProtocolError)?.message ?? "\(error)"
    }

    /// Reads a body; every problem is a `bad_request` or `bad_id52` naming the field.
    public init(jsonBody bytes: some Collection<UInt8>, maxTimeout: Duration = .seconds(600), maxWindow: Int = 16_777_216) throws(WireError) {
        let parsed = bytes.withContiguousStorageIfAvailable { bytes in
            Result { () throws(StreamProtocolError) in try JSONValue(parsingUTF8: UnsafeRawBufferPointer(bytes)) }
        } ?? Array(bytes).withUnsafeBytes { bytes in
            Result { () throws(StreamProtocolError) in try JSONValue(parsingUTF8: bytes) }
        }
        let value: JSONValue
        do { value = try parsed.get() } catch {
            throw WireError(.badRequest, "OPEN's body is not JSON: \(Self.reason(error))")
        }
        guard case .object(let fields) = value else {
            throw WireError(.badRequest, "OPEN's body must be a JSON object")
        }
        func field(_ name: String) -> JSONValue? { fields.last { $0.key == name }?.value }
        func string(_ name: String) throws(WireError) -> String? {
            switch field(name) {
            case nil, .null?: return nil
            case .string(let text)?: return text
            default: throw WireError(.badRequest, "OPEN's \"\(name)\" must be a string")
            }
        }
        func integer(_ name: String, _ range: ClosedRange<Int>) throws(WireError) -> Int? {
            switch field(name) {
            case nil, .null?: return nil
            case .number(let text)?:
                guard let number = Int(text), range.contains(number) else {
                    throw WireError(.badRequest, "OPEN's \"\(name)\" must be an integer in \(range.lowerBound)...\(range.upperBound), got \(text.prefix(40))")
                }
                return number
            default: throw WireError(.badRequest, "OPEN's \"\(name)\" must be a number")
            }
        }
        func id52(_ name: String) throws(WireError) -> ID52? {
            guard let text = try string(name) else { return nil }
            do { return try ID52(parsing: text) } catch {
                throw WireError(.badID52, "OPEN's \"\(name)\" \(text.prefix(80).debugDescription) is not an ID52: \(error)")
            }
        }
        guard let remote = try id52("remote") else {
            throw WireError(.badRequest, "OPEN needs \"remote\", the peer's ID52")
        }
        guard let protocolValue = field("protocol") else {
            throw WireError(.badRequest, "OPEN needs \"protocol\", e.g. \"Ping\" or {\"Generic\": ...}")
        }
        let streamProtocol: StreamProtocol
        do { streamProtocol = try StreamProtocol(value: protocolValue) } catch {
            throw WireError(.badRequest, "OPEN's \"protocol\" is not a fastn-net protocol: \(Self.reason(error))")
        }
        let address = try string("address")
        let extra = try string("extra")
        if let extra, extra.utf8.contains(UInt8(ascii: "\n")) {
            throw WireError(.badRequest, "OPEN's \"extra\" must be one line (no newline)")
        }
        let maxMilliseconds = Self.milliseconds(maxTimeout)
        self.init(
            remote: remote,
            address: address,
            local: try id52("self"),
            header: ProtocolHeader(streamProtocol, extra: extra),
            timeout: try integer("timeout_ms", 1...maxMilliseconds).map { .milliseconds($0) },
            window: try integer("window", 1...maxWindow)
        )
        if let address, socketAddress == nil {
            throw WireError(.badRequest, "OPEN's \"address\" \(address.prefix(80).debugDescription) is not host:port with an IP address")
        }
    }

    /// Whole milliseconds of `duration`, as the JSON bodies carry durations.
    public static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
