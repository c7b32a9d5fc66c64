import NIOCore
import PeerpoolIdentity

/// An authenticated QUIC connection: both sides proved the ed25519 key behind their ID52.
///
/// Handed out only after the handshake, so both identities are known and fixed. The connection
/// lives until it is closed, times out or its endpoint closes; `closed()` says why.
public final class QUICConnection: Sendable, Hashable, CustomStringConvertible {
    let core: QUICConnectionCore
    /// The identity we presented.
    public let localID52: ID52
    /// The identity the peer proved.
    public let remoteID52: ID52
    /// The peer's UDP address; on a relay path, the stand-in address the endpoint gave the peer
    /// (reachable only through this endpoint's relay, never over UDP).
    public let remoteAddress: SocketAddress
    /// How the connection reaches the peer: over UDP or through the endpoint's home relay.
    /// Fixed for the connection's life.
    public let path: QUICPath

    init(core: QUICConnectionCore, localID52: ID52, remoteID52: ID52, remoteAddress: SocketAddress, path: QUICPath) {
        self.core = core
        self.localID52 = localID52
        self.remoteID52 = remoteID52
        self.remoteAddress = remoteAddress
        self.path = path
    }

    public var description: String {
        "QUICConnection(\(localID52) <-> \(remoteID52) " + (path.isRelay ? "via relay)" : "at \(remoteAddress))")
    }

    /// Opens a bidirectional stream. At the peer's concurrent-stream limit this waits for a
    /// slot instead of failing; cancelling the task withdraws the wait.
    public func openStream() async throws -> QUICStream {
        try await core.openStream()
    }

    /// The next stream the peer opened. Throws the close reason once the connection is over.
    public func acceptStream() async throws -> QUICStream {
        try await core.acceptStream()
    }

    /// Closes with an application error code (0: normal close) and a short reason for the peer.
    /// Every waiter fails with `.connectionClosed`.
    public func close(code: UInt64 = 0, reason: String = "") async {
        await core.close(code: code, reason: reason)
    }

    /// Waits for the connection to end and says why.
    public func closed() async -> QUICCloseReason {
        await core.closed()
    }

    /// Starts a TLS 1.3 key update now (ngtcp2 answers the peer's on its own). For tests and
    /// for operators who rotate keys on long-lived connections.
    public func initiateKeyUpdate() async throws {
        try await core.initiateKeyUpdate()
    }

    /// How the peer presented its key: a raw public key (iroh, fastn, peerpool) or an X.509
    /// certificate (the fallback for peers that negotiate no certificate type).
    public var peerCertificateType: QUICCertificateType? {
        get async { await core.peerCertificateType }
    }

    /// Why the connection ended, or nil while it is open.
    public var closeReason: QUICCloseReason? {
        get async { await core.closeReason }
    }

    public static func == (a: QUICConnection, b: QUICConnection) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
