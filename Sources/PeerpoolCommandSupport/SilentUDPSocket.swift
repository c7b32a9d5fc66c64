import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A UDP port on loopback that reads nothing and answers nothing: a peer that never responds.
/// Owns its socket; closed in deinit.
public final class SilentUDPSocket: Sendable {
    public let descriptor: Int32
    public let address: SocketAddress

    public init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.descriptor = descriptor
        var bound = sockaddr_in()
        bound.sin_family = sa_family_t(AF_INET)
        bound.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &bound) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
            }
        }
        guard ok else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        address = try SocketAddress(ipAddress: "127.0.0.1", port: Int(UInt16(bigEndian: bound.sin_port)))
    }

    deinit { close(descriptor) }
}
