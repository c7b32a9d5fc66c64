import NIOCore
import PeerpoolIdentity

/// A stream to a peer that acknowledged its protocol header, wherever it runs: `PeerStream` in
/// this process, or a stream served by a supervisor's worker process.
///
/// Code written against this protocol runs unchanged on an in-process `PeerPool` or on a
/// supervisor's client, so an application can start with one process and scale out later.
public protocol PeerByteStream: Sendable {
    var header: ProtocolHeader { get }
    var remoteID52: ID52 { get }
    /// The next bytes from the peer, nil once it finished its side.
    func read() async throws -> ByteBuffer?
    /// Everything until the peer finishes, refusing more than `limit` bytes.
    func readToEnd(limit: Int) async throws -> ByteBuffer
    /// Suspends while the peer (or the flow-control window toward it) cannot take more.
    func write(_ buffer: ByteBuffer) async throws
    func write(_ bytes: some Sequence<UInt8>) async throws
    /// Ends our side; the peer reads to its end.
    func finish() async throws
    /// Abandons both sides with an application error code.
    func reset(code: UInt64) async
}

/// Anything that hands out streams by fastn's protocol: `PeerPool`, or a supervisor's client.
public protocol StreamProvider: Sendable {
    associatedtype Stream: PeerByteStream
    /// A stream to `peer` whose header `peer` acknowledged, as `local` (nil: the default identity).
    func getStream(_ header: ProtocolHeader, to peer: PeerAddress, from local: ID52?) async throws -> Stream
}
