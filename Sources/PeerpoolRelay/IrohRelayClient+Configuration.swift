import NIOCore
import NIOSSL
import PeerpoolDiscovery

extension IrohRelayClient {
    /// How the relay client connects, keeps alive and buffers. Defaults follow iroh.
    public struct Configuration: Sendable {
        /// Ping interval and pong timeout (15 s / 5 s, iroh's), handshake timeout (10 s, also the
        /// TCP connect timeout) and reconnect backoff (0.5 s doubling to 30 s).
        public var connection = RelayClientStateMachine.Configuration()
        /// Frames waiting while the WebSocket is not writable. A datagram that does not fit is
        /// dropped, as UDP would, and counted in ``IrohRelayClient/droppedDatagrams``; the QUIC
        /// layer's congestion control sees it as loss. Default: 4 MiB.
        public var maximumQueuedBytes = 4 << 20
        /// The socket's write buffer: above `high` bytes the connection stops taking frames
        /// directly and queues them (up to ``maximumQueuedBytes``), below `low` it drains the queue.
        /// Default: 256 KiB / 1 MiB.
        public var writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 << 10, high: 1 << 20)
        /// TLS for `https://` relays. Default: the system's trust roots, the relay's host name
        /// verified (iroh checks the same).
        public var tls = TLSConfiguration.makeClientConfiguration()

        public init() {}
    }
}
