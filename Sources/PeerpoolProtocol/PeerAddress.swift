import NIOCore
import PeerpoolIdentity

/// A peer to reach: its ID52 and, optionally, where (`ID52@host:port`). Without an address the
/// pool asks its resolver.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var id52: ID52
    public var socketAddress: SocketAddress?

    public init(_ id52: ID52, at socketAddress: SocketAddress? = nil) {
        self.id52 = id52
        self.socketAddress = socketAddress
    }

    /// Parses `ID52` or `ID52@host:port` (IPv6 as `ID52@[::1]:port`). Host names are not
    /// resolved: peerpool addresses are IP literals.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let id: ID52
        do {
            id = try ID52(parsing: String(parts[0]))
        } catch {
            throw PeerAddressError("\(text.prefix(80).debugDescription) does not start with a valid ID52: \(error)")
        }
        guard parts.count == 2 else {
            self.init(id)
            return
        }
        guard let address = Self.socketAddress(hostPort: parts[1]) else {
            throw PeerAddressError(peer: id, "\(text.debugDescription): expected ID52@host:port with an IP address and a port 1-65535")
        }
        self.init(id, at: address)
    }

    /// Reads `host:port` with an IP literal host (IPv6 in brackets, `[::1]:4433`); nil if it is
    /// not one, or an IPv6 literal without brackets. Host names are not resolved.
    public static func socketAddress(hostPort: some StringProtocol) -> SocketAddress? {
        // Read as bytes: every OPEN carries one, and Character-wise slicing showed up per open.
        let bytes = Array(hostPort.utf8)
        guard let colon = bytes.lastIndex(of: UInt8(ascii: ":")), colon + 1 < bytes.count, bytes.count - colon <= 6 else { return nil }
        var port = 0
        for byte in bytes[(colon + 1)...] {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            port = port * 10 + Int(byte - UInt8(ascii: "0"))
        }
        guard (1...65_535).contains(port) else { return nil }
        var host = bytes[..<colon]
        if host.first == UInt8(ascii: "[") && host.last == UInt8(ascii: "]") && host.count >= 2 {
            host = host.dropFirst().dropLast()
        } else if host.contains(UInt8(ascii: ":")) {
            // `::1:80` could be [::1]:80 or [::0.1.0.80] with no port: IPv6 takes brackets.
            return nil
        }
        return try? SocketAddress(ipAddress: String(decoding: host, as: UTF8.self), port: port)
    }

    public var description: String {
        guard let socketAddress, let ip = socketAddress.ipAddress, let port = socketAddress.port else { return "\(id52)" }
        return socketAddress.protocol == .inet6 ? "\(id52)@[\(ip)]:\(port)" : "\(id52)@\(ip):\(port)"
    }
}
