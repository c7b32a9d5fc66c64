#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import PeerpoolIdentity

/// Stand-in IPv6 addresses for peers reached through a relay, so that ngtcp2 and the endpoint's
/// routing see an ordinary path (iroh's magicsock maps relayed peers to fake IPv6 addresses the
/// same way, under a prefix of its own).
///
/// Layout: `fd70:6565:7270:<relay slot, 16 bits>:<serial, 64 bits>`, port 1. The prefix is an
/// RFC 4193 unique local prefix whose 40-bit global ID spells "peerp" in ASCII instead of being
/// random: these addresses exist only inside one endpoint and never reach a socket (the endpoint
/// drops UDP datagrams whose source is in the prefix and refuses `.udp` connects to it). The
/// relay slot says which of the endpoint's relays carries the peer (0: the home relay, the only
/// one so far). Serials count up and are never reused, so an evicted stand-in is never taken
/// for a later peer's.
///
/// Bounded by `capacity` (`QUICConfiguration.maxRelayPeers`): a stand-in is pinned while a
/// connection uses it. Past the bound, the one idle longest is evicted; when all are pinned,
/// `address(for:)` returns nil.
///
/// Not thread-safe: a value inside `QUICEndpointCore`, used on the endpoint's event loop only.
struct RelayStandIns {
    /// A peer as one of the endpoint's relays names it.
    struct Peer: Hashable {
        let slot: UInt16
        let id: ID52
    }

    private struct Entry {
        let peer: Peer
        /// Connections using this stand-in; evictable at 0.
        var connections: Int
    }

    /// `fd70:6565:7270::/48`.
    static let prefix: [UInt8] = [0xfd, 0x70, 0x65, 0x65, 0x72, 0x70]
    static let port: UInt16 = 1

    let capacity: Int
    private var addresses: [Peer: SocketAddress] = [:]
    private var entries: [SocketAddress: Entry] = [:]
    /// Stand-ins that had no connection when created or last unpinned, oldest first. May hold
    /// stale addresses (evicted, or pinned again since), skipped when evicting; compacted when
    /// it outgrows twice the capacity, so it stays bounded.
    private var idle = CircularBuffer<SocketAddress>()
    private var nextSerial: UInt64 = 1

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Stand-ins allocated now.
    var count: Int { entries.count }

    /// Whether `address` lies in the stand-in prefix (allocated or not).
    static func isStandIn(_ address: SocketAddress) -> Bool {
        guard case .v6(let v6) = address else { return false }
        return withUnsafeBytes(of: v6.address.sin6_addr) { $0.prefix(prefix.count).elementsEqual(prefix) }
    }

    /// The peer a stand-in stands for, if it is allocated.
    func peer(at address: SocketAddress) -> Peer? {
        entries[address]?.peer
    }

    /// The stand-in of `peer`, allocated on first use (evicting the longest-idle one when full).
    /// Nil when every stand-in is pinned by a connection.
    mutating func address(for peer: Peer) -> SocketAddress? {
        if let address = addresses[peer] { return address }
        if entries.count >= capacity, !evictOne() { return nil }
        let address = Self.make(slot: peer.slot, serial: nextSerial)
        nextSerial += 1
        addresses[peer] = address
        entries[address] = Entry(peer: peer, connections: 0)
        markIdle(address)
        return address
    }

    /// A connection now uses `address`: it stays until `unpin`.
    mutating func pin(_ address: SocketAddress) {
        entries[address]?.connections += 1
    }

    /// A connection that used `address` ended.
    mutating func unpin(_ address: SocketAddress) {
        guard var entry = entries[address], entry.connections > 0 else { return }
        entry.connections -= 1
        entries[address] = entry
        if entry.connections == 0 { markIdle(address) }
    }

    private mutating func markIdle(_ address: SocketAddress) {
        idle.append(address)
        guard idle.count > 2 * capacity + 64 else { return }
        // Keep each idle stand-in once, at its latest position.
        var seen = Set<SocketAddress>()
        var kept: [SocketAddress] = []
        for candidate in idle.reversed() where entries[candidate]?.connections == 0 && seen.insert(candidate).inserted {
            kept.append(candidate)
        }
        idle = CircularBuffer(kept.reversed())
    }

    private mutating func evictOne() -> Bool {
        while let address = idle.popFirst() {
            guard let entry = entries[address], entry.connections == 0 else { continue }
            entries[address] = nil
            addresses[entry.peer] = nil
            return true
        }
        return false
    }

    private static func make(slot: UInt16, serial: UInt64) -> SocketAddress {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        var groups: [UInt16] = [0xfd70, 0x6565, 0x7270, slot]
        for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: serial >> UInt64(shift))) }
        withUnsafeMutableBytes(of: &address.sin6_addr) { bytes in
            for (index, group) in groups.enumerated() {
                bytes[2 * index] = UInt8(group >> 8)
                bytes[2 * index + 1] = UInt8(group & 0xff)
            }
        }
        let host = groups.map { String($0, radix: 16) }.joined(separator: ":")
        return SocketAddress(address, host: host)
    }
}
