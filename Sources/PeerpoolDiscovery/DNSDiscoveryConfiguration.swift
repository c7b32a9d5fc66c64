import Foundation
import NIOCore

/// How ``IrohDNSResolver`` finds and caches `_iroh` records.
public struct DNSDiscoveryConfiguration: Sendable {
    /// The zone iroh's DNS server serves pkarr records under. Default: `dns.iroh.link` (n0's
    /// public server). Change it to use a private pkarr/DNS server.
    public var origin: String = "dns.iroh.link"
    /// Name servers to ask, in order. Default `nil`: the `nameserver` lines of
    /// `/etc/resolv.conf`, read once when the resolver is made.
    public var nameServers: [SocketAddress]?
    /// How long one name server has to answer before the next is tried. Default: 2 s.
    public var queryTimeout: Duration = .seconds(2)
    /// Results kept at most; when full, expired ones go first, then the soonest to expire.
    /// Default: 4096.
    public var cacheCapacity: Int = 4096
    /// How long "no such record" (NXDOMAIN, or no TXT values) is remembered. Default: 30 s,
    /// the TTL iroh publishes with, so a peer that comes online is seen as soon as it would be.
    public var negativeTTL: Duration = .seconds(30)
    /// A record's TTL is capped at this, so a mistaken huge TTL cannot pin stale addresses.
    /// Default: 1 hour.
    public var maximumTTL: Duration = .seconds(3600)
    /// Answers larger than this are ignored. Default: 4096 bytes (iroh's records are ≤ 1000).
    public var maximumResponseSize: Int = 4096

    public init(origin: String = "dns.iroh.link", nameServers: [SocketAddress]? = nil) {
        self.origin = origin
        self.nameServers = nameServers
    }

    /// The `nameserver` lines of a resolv.conf text (at most 3, as glibc reads), port 53.
    public static func nameServers(resolvConf text: String) -> [SocketAddress] {
        var servers: [SocketAddress] = []
        for line in text.split(separator: "\n") where servers.count < 3 {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            let host = fields[1].split(separator: "%", maxSplits: 1)[0]
            if let address = try? SocketAddress(ipAddress: String(host), port: 53) { servers.append(address) }
        }
        return servers
    }

    /// ``nameServers`` if set, else those of `/etc/resolv.conf`. Throws
    /// ``DiscoveryError/Code/noNameServer`` when there are none.
    func resolvedNameServers(resolvConfPath: String = "/etc/resolv.conf") throws(DiscoveryError) -> [SocketAddress] {
        if let nameServers, !nameServers.isEmpty { return nameServers }
        let text = (try? String(contentsOfFile: resolvConfPath, encoding: .utf8)) ?? ""
        let servers = Self.nameServers(resolvConf: String(text.prefix(65536)))
        guard !servers.isEmpty else {
            throw DiscoveryError(.noNameServer, "no nameserver line in \(resolvConfPath); add one or set DNSDiscoveryConfiguration.nameServers")
        }
        return servers
    }
}
