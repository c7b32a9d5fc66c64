import ArgumentParser
import NIOCore

/// `host:port` as the command line writes it: IPv6 in brackets.
public enum HostPort {
    /// `host:port`, `[v6]:port` split at the last colon; port 0 allowed (any free port).
    /// `option` names the flag the text came from in the error.
    public static func parse(_ text: String, option: String = "--address") throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65_535).contains(port) else {
            throw ValidationError("\(option) must be host:port (e.g. 127.0.0.1:0 or [::1]:4433), not \(text)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("\(option) needs a host: \(text)") }
        return (host, port)
    }

    /// `ip:port`, or `[ip]:port` for IPv6.
    public static func format(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
