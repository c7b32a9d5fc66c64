import NIOCore
import PeerpoolPool
import PeerpoolTestSupport

extension ListenProcess {
    /// Where the listener's identities answer, as the pool dials them.
    var socketAddress: SocketAddress {
        get throws { try SocketAddress(ipAddress: host, port: port) }
    }

    /// Identity `index` at the listener's address.
    func peer(_ index: Int = 0) throws -> PeerAddress {
        PeerAddress(identities[index], at: try socketAddress)
    }
}
