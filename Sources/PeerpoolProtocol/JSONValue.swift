import Foundation

/// Any JSON value, kept in serde_json's canonical form: object keys sorted, no whitespace.
/// Needed because `{"Generic": ...}` may carry arbitrary JSON that must round-trip exactly.
public indirect enum JSONValue: Hashable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Keys in sorted order (as serde_json's default map writes them).
    case object([(key: String, value: JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.json == b.json }
    public func hash(into hasher: inout Hasher) { hasher.combine(json) }

    /// Parses one JSON value (a whole line; surrounding whitespace allowed).
    public init(parsing text: String) throws {
        var text = text
        self = try text.withUTF8 { bytes in try JSONValue(parsingUTF8: UnsafeRawBufferPointer(bytes)) }
    }

    /// Parses one JSON value from UTF-8 bytes, strictly as serde_json does (`JSONParser`).
    /// Throws `StreamProtocolError` `malformed_header` saying what is wrong and where.
    public init(parsingUTF8 bytes: UnsafeRawBufferPointer) throws(StreamProtocolError) {
        // Foundation skips a leading byte-order mark; fastn-net's serde_json refuses it, and a
        // header one side accepts and the other refuses would split the network.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw StreamProtocolError(.malformedHeader, "header starts with a byte-order mark (U+FEFF), which JSON does not allow")
        }
        do {
            self = try JSONParser.parse(bytes)
        } catch {
            let text = String(decoding: bytes.prefix(120), as: UTF8.self)
            throw StreamProtocolError(.malformedHeader, "header is not JSON (\(error)): \(text.debugDescription)")
        }
    }

    /// Compact JSON text.
    public var json: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return JSONValue.quote(text)
        case .array(let items): return "[" + items.map(\.json).joined(separator: ",") + "]"
        case .object(let fields): return "{" + fields.map { JSONValue.quote($0.key) + ":" + $0.value.json }.joined(separator: ",") + "}"
        }
    }

    public var description: String { json }

    /// A JSON string literal, escaped as serde_json escapes (", \\, control characters).
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: Codable {
    /// Decoding tries the kinds in an order JSONDecoder keeps apart: it refuses `1` as a Bool
    /// and `true` as a number.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .number(String(value))
        } else if let value = try? container.decode(UInt64.self) {
            self = .number(String(value))
        } else if let value = try? container.decode(Double.self) {
            self = .number("\(value)")
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value.keys.sorted().map { ($0, value[$0]!) })
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let text):
            if let value = Int64(text) { try container.encode(value) } else { try container.encode(Double(text) ?? 0) }
        case .string(let value): try container.encode(value)
        case .array(let items): try container.encode(items)
        case .object(let fields):
            try container.encode(Dictionary(fields.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }))
        }
    }
}
