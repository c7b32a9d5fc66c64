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
            throw PoolError(.badAddress, "\(text.prefix(80).debugDescription) does not start with a valid ID52: \(error)")
        }
        guard parts.count == 2 else {
            self.init(id)
            return
        }
        let hostPort = parts[1]
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]),
            (1...65_535).contains(port)
        else {
            throw PoolError(.badAddress, peer: id, "\(text.debugDescription): expected ID52@host:port with a port 1-65535")
        }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        do {
            self.init(id, at: try SocketAddress(ipAddress: host, port: port))
        } catch {
            throw PoolError(.badAddress, peer: id, "\(text.debugDescription): \(host) is not an IP address")
        }
    }

    public var description: String {
        guard let socketAddress, let ip = socketAddress.ipAddress, let port = socketAddress.port else { return "\(id52)" }
        return socketAddress.protocol == .inet6 ? "\(id52)@[\(ip)]:\(port)" : "\(id52)@\(ip):\(port)"
    }
}
