import NIOCore
import PeerpoolIdentity

/// What iroh publishes about an endpoint under `_iroh.<z-base-32 key>`: TXT values `addr=ip:port`
/// (direct UDP addresses; older iroh joins several with spaces in one value) and `relay=URL` (its
/// home relay). Other keys (`user-data=`) are kept out and ignored, as iroh ignores unknown keys.
public struct IrohEndpointRecord: Sendable, Equatable, CustomStringConvertible {
    /// The DNS label the records live under, below the key's z-base-32 label.
    public static let label = "_iroh"
    /// The TTL iroh publishes with.
    public static let defaultTTL: UInt32 = 30
    /// At most this many addresses and relay URLs are read from one peer's record.
    public static let maximumAddresses = 32
    public static let maximumRelays = 8

    public var peer: ID52
    public var addresses: [SocketAddress]
    public var relayURLs: [String]

    public init(peer: ID52, addresses: [SocketAddress] = [], relayURLs: [String] = []) {
        self.peer = peer
        self.addresses = addresses
        self.relayURLs = relayURLs
    }

    /// `_iroh.<z32>` (no origin): the name inside a pkarr packet.
    public static func name(of peer: ID52) -> String { "\(label).\(ZBase32.encode(peer))" }

    /// `_iroh.<z32>.<origin>`: the name to ask DNS for.
    public static func name(of peer: ID52, origin: String) -> String {
        let origin = origin.hasSuffix(".") ? String(origin.dropLast()) : origin
        return origin.isEmpty ? name(of: peer) : "\(name(of: peer)).\(origin)"
    }

    public var isEmpty: Bool { addresses.isEmpty && relayURLs.isEmpty }

    public var description: String {
        if isEmpty { return "no addr= and no relay= values" }
        let parts = addresses.map { "addr=\(Self.text(of: $0))" } + relayURLs.map { "relay=\($0)" }
        return parts.joined(separator: " ")
    }

    /// The TXT values to publish, one attribute each: relays first, then addresses.
    public var txtValues: [String] {
        relayURLs.map { "relay=\($0)" } + addresses.map { "addr=\(Self.text(of: $0))" }
    }

    /// `ip:port`, IPv6 in brackets, as Rust's `SocketAddr` prints it.
    public static func text(of address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }

    /// Reads TXT values. A value without `=`, an `addr=` that is not `ip:port`, a `relay=` that is
    /// not an http(s) URL, or more than the maximum of either is refused with
    /// ``DiscoveryError/Code/badIrohRecord`` quoting the value.
    public init(peer: ID52, txtValues: [String]) throws(DiscoveryError) {
        self.init(peer: peer)
        for value in txtValues {
            guard let equals = value.firstIndex(of: "=") else {
                throw DiscoveryError(.badIrohRecord, "\(peer)'s _iroh TXT value \"\(value.prefix(100))\" is not key=value")
            }
            let key = value[..<equals], rest = value[value.index(after: equals)...]
            switch key {
            case "addr":
                for text in rest.split(whereSeparator: { $0 == " " }) {
                    guard let address = Self.socketAddress(text) else {
                        throw DiscoveryError(.badIrohRecord, "\(peer)'s _iroh TXT value addr=\(rest.prefix(100)) holds \"\(text.prefix(60))\", which is not ip:port (IPv6 as [ip]:port)")
                    }
                    if !addresses.contains(address) { addresses.append(address) }
                }
                guard addresses.count <= Self.maximumAddresses else {
                    throw DiscoveryError(.badIrohRecord, "\(peer)'s _iroh record lists more than \(Self.maximumAddresses) addresses")
                }
            case "relay":
                let url = String(rest)
                guard url.count <= 1000, url.hasPrefix("https://") || url.hasPrefix("http://"), url.count > 8,
                      !url.contains(where: { $0 == " " || $0.isNewline }) else {
                    throw DiscoveryError(.badIrohRecord, "\(peer)'s _iroh TXT value relay=\(url.prefix(100)) is not an http or https URL")
                }
                if !relayURLs.contains(url) { relayURLs.append(url) }
                guard relayURLs.count <= Self.maximumRelays else {
                    throw DiscoveryError(.badIrohRecord, "\(peer)'s _iroh record lists more than \(Self.maximumRelays) relays")
                }
            default:
                continue
            }
        }
    }

    /// `ip:port` or `[ipv6]:port` (no names, port 1-65535); `nil` otherwise.
    public static func socketAddress(_ text: Substring) -> SocketAddress? {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), port != 0, !host.isEmpty else { return nil }
        return try? SocketAddress(ipAddress: String(host), port: Int(port))
    }
}
