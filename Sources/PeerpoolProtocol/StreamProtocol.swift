import Foundation

/// What a stream carries, named in its first line exactly as fastn-net names it: unit protocols
/// are JSON strings (`"Ping"`), a user-defined one is `{"Generic": <any JSON>}`.
public enum StreamProtocol: Hashable, Sendable, CustomStringConvertible {
    case ping
    case whatTimeIsIt
    case http
    case httpProxy
    case socks5
    case tcp
    case deviceToAccount
    case accountToAccount
    case accountToDevice
    case rigControl
    /// A user-defined protocol. The JSON is kept in canonical form (keys sorted, no spaces), as
    /// serde_json writes it, so two equal values name the same protocol.
    case generic(JSONValue)

    static let unitNames: [(StreamProtocol, String)] = [
        (.ping, "Ping"), (.whatTimeIsIt, "WhatTimeIsIt"), (.http, "Http"), (.httpProxy, "HttpProxy"),
        (.socks5, "Socks5"), (.tcp, "Tcp"), (.deviceToAccount, "DeviceToAccount"),
        (.accountToAccount, "AccountToAccount"), (.accountToDevice, "AccountToDevice"), (.rigControl, "RigControl"),
    ]

    private static let unitsByJSON: [String: StreamProtocol] = Dictionary(
        uniqueKeysWithValues: unitNames.map { ("\"\($0.1)\"", $0.0) })

    /// The protocol as one line of JSON, without the newline.
    public var json: String {
        switch self {
        case .generic(let value): return "{\"Generic\":\(value.json)}"
        default: return "\"\(Self.unitNames.first { $0.0 == self }!.1)\""
        }
    }

    /// The protocol as a JSON value: a unit name's string, or `{"Generic": ...}`.
    public var jsonValue: JSONValue {
        switch self {
        case .generic(let value): return .object([(key: "Generic", value: value)])
        default: return .string(Self.unitNames.first { $0.0 == self }!.1)
        }
    }

    /// Parses the JSON of a header line. Throws `StreamProtocolError` naming what was wrong.
    public init(json text: some StringProtocol) throws {
        // Fast path for the common case, a bare unit name such as "Ping" (no escapes, no
        // spaces): no JSON decoder per stream header.
        if let unit = Self.unitsByJSON[String(text)] {
            self = unit
            return
        }
        try self.init(value: try JSONValue(parsing: String(text)))
    }

    /// The protocol a parsed JSON value names (`"Ping"`, `{"Generic": ...}`).
    public init(value: JSONValue) throws(StreamProtocolError) {
        switch value {
        case .string(let name):
            guard let match = Self.unitNames.first(where: { $0.1 == name }) else {
                throw StreamProtocolError(.unknownProtocol, "unknown protocol \(value.json)")
            }
            self = match.0
        case .object(let fields) where fields.count == 1 && fields[0].key == "Generic":
            self = .generic(fields[0].value)
        default:
            throw StreamProtocolError(.unknownProtocol, "not a protocol: \(value.json.prefix(200))")
        }
    }

    public var description: String { json }
}

/// A stream header: the protocol line and, optionally, one extra line after it.
public struct ProtocolHeader: Hashable, Sendable, CustomStringConvertible {
    public var `protocol`: StreamProtocol
    /// Sent as its own line after the protocol (fastn-net's `extra`). Must not contain a newline.
    public var extra: String?

    public init(_ protocol: StreamProtocol, extra: String? = nil) {
        self.protocol = `protocol`
        self.extra = extra
    }

    /// The bytes the opener writes: `<protocol JSON>\n` then `<extra>\n` if there is one.
    public func encoded() throws -> [UInt8] {
        var bytes = Array(self.protocol.json.utf8)
        bytes.append(UInt8(ascii: "\n"))
        if let extra {
            guard !extra.utf8.contains(UInt8(ascii: "\n")) else {
                throw StreamProtocolError(.malformedHeader, "the extra line must not contain a newline")
            }
            bytes += extra.utf8
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    public var description: String { extra.map { "\(self.protocol) + \($0.debugDescription)" } ?? "\(self.protocol)" }
}
