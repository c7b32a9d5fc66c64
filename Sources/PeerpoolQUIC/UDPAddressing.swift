#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// How one UDP socket reaches peer addresses, and which addresses it refuses before they can
/// hurt it.
///
/// SwiftNIO closes a datagram channel on any send error but `EMSGSIZE` and `EHOSTUNREACH`. One
/// packet to an address the kernel refuses (IPv6 on an IPv4 socket, a broadcast address, a
/// network with no route) would therefore take the whole endpoint, and every connection on it,
/// down. So every address a connection will send to is checked here first: families that cannot
/// mix are refused, and a throwaway UDP socket `connect`s to the address, which asks the kernel
/// the same routing and permission questions a send would, without sending anything.
///
/// A socket bound to `::` with `IPV6_V6ONLY` off (Linux's default) is dual-stack: it reaches
/// IPv4 peers through IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`). Connections always see the
/// plain IPv4 form; the mapping happens only at the socket's edge (`wire(_:)`, `logical(_:)`).
struct UDPAddressing: Sendable {
    /// The family the socket was bound with.
    let socketFamily: NIOBSDSocket.ProtocolFamily
    /// An IPv6 socket that also carries IPv4 (IPV6_V6ONLY off).
    let dualStack: Bool
    /// What the socket is bound to, for messages.
    let localDescription: String

    init(localAddress: SocketAddress, dualStack: Bool) {
        self.socketFamily = localAddress.protocol
        self.dualStack = localAddress.protocol == .inet6 && dualStack
        self.localDescription = Self.describe(localAddress)
    }

    /// The address as connections see it: IPv4-mapped IPv6 addresses become plain IPv4.
    func logical(_ address: SocketAddress) -> SocketAddress {
        guard case .v6(let v6) = address, let mapped = Self.unmapped(v6.address) else { return address }
        return mapped
    }

    /// The address to hand the socket: plain IPv4 becomes IPv4-mapped on a dual-stack socket.
    func wire(_ address: SocketAddress) -> SocketAddress {
        guard dualStack, case .v4(let v4) = address else { return address }
        var mapped = sockaddr_in6()
        mapped.sin6_family = sa_family_t(AF_INET6)
        mapped.sin6_port = v4.address.sin_port
        withUnsafeMutableBytes(of: &mapped.sin6_addr) { bytes in
            bytes[10] = 0xff
            bytes[11] = 0xff
            withUnsafeBytes(of: v4.address.sin_addr) { ipv4 in
                for index in 0..<4 { bytes[12 + index] = ipv4[index] }
            }
        }
        return SocketAddress(mapped, host: v4.host)
    }

    /// Throws `address_unreachable` unless this socket can send to `address` (in its logical
    /// form), naming the address and the kernel's answer.
    func checkSendable(_ address: SocketAddress) throws {
        let text = Self.describe(address)
        func refuse(_ why: String) -> QUICError {
            QUICError(.addressUnreachable, "cannot send to \(text): \(why)")
        }
        guard let port = address.port, (1...65_535).contains(port) else { throw refuse("port 0 is not a peer's port") }
        let family: CInt
        switch address {
        case .v4(let v4):
            let ip = UInt32(bigEndian: v4.address.sin_addr.s_addr)
            if ip == 0 { throw refuse("0.0.0.0 names no peer") }
            if ip == 0xffff_ffff { throw refuse("a broadcast address names no peer") }
            if ip >> 28 == 0xe { throw refuse("a multicast address names no peer") }
            guard socketFamily == .inet || dualStack else {
                throw refuse("this endpoint's UDP socket (\(localDescription)) is IPv6-only")
            }
            family = AF_INET
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes.allSatisfy({ $0 == 0 }) { throw refuse(":: names no peer") }
            if bytes[0] == 0xff { throw refuse("a multicast address names no peer") }
            guard socketFamily == .inet6 else {
                throw refuse(
                    "this endpoint's UDP socket (\(localDescription)) is IPv4; bind it to \"::\" to reach IPv6 peers too")
            }
            family = AF_INET6
        default:
            throw refuse("only IPv4 and IPv6 addresses carry QUIC")
        }
        // A throwaway socket: connect() on UDP sends nothing, it only asks for a route and checks
        // permissions (broadcast), exactly where a send on the shared socket would fail.
        let probe = socket(family, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw refuse("no UDP socket to check the route with (errno \(errno))") }
        defer { close(probe) }
        let result = address.withSockAddr { pointer, length in connect(probe, pointer, socklen_t(length)) }
        if result != 0 {
            let code = errno
            throw refuse("\(String(cString: strerror(code))) (errno \(code))")
        }
    }

    /// `host:port`, IPv6 in brackets.
    static func describe(_ address: SocketAddress) -> String {
        let host = address.ipAddress ?? "?"
        let port = address.port.map(String.init) ?? "?"
        return address.protocol == .inet6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The IPv4 address inside `::ffff:a.b.c.d`, or nil.
    private static func unmapped(_ v6: sockaddr_in6) -> SocketAddress? {
        withUnsafeBytes(of: v6.sin6_addr) { bytes -> SocketAddress? in
            guard bytes[10] == 0xff, bytes[11] == 0xff, bytes[0..<10].allSatisfy({ $0 == 0 }) else { return nil }
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = v6.sin6_port
            withUnsafeMutableBytes(of: &v4.sin_addr) { out in
                for index in 0..<4 { out[index] = bytes[12 + index] }
            }
            let host = "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
            return SocketAddress(v4, host: host)
        }
    }
}
