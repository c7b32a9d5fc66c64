import CNGTCP2
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import PeerpoolIdentity

/// One QUIC connection: its ngtcp2 state, its GnuTLS session and its streams.
///
/// Confinement: the actor runs on the event loop of its endpoint's UDP channel
/// (`unownedExecutor`), so actor isolation *is* loop confinement. ngtcp2 and GnuTLS invoke our C
/// callbacks synchronously from calls made inside this actor; the callbacks re-enter with
/// `assumeIsolated`, which checks that at run time.
///
/// Ownership of C state (all freed in `freeNativeState()`, called once the connection is over,
/// or in `deinit` as a backstop):
/// - `conn`: from `ngtcp2_conn_{client,server}_new`, freed by `ngtcp2_conn_del`.
/// - `session`: from `gnutls_init`, freed by `gnutls_deinit` (after `conn`, which refers to it).
/// - `connRef`: allocated here; GnuTLS's session pointer and ngtcp2's crypto helper refer to it.
///   Its `user_data` is this actor, unretained: the endpoint's connection table keeps the actor
///   alive for as long as ngtcp2 can call back.
/// - `path`: allocated here; holds the socket addresses ngtcp2 reads through `ngtcp2_path`.
/// - `vecs`: scratch space for `ngtcp2_conn_writev_stream`.
actor QUICConnectionCore {
    nonisolated let eventLoop: any EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { eventLoop.executor.asUnownedSerialExecutor() }

    let endpoint: QUICEndpointCore
    let tls: TLSContext
    let configuration: QUICConfiguration
    let isServer: Bool
    var logger: Logger

    // `nonisolated(unsafe)` only so that `deinit` can free them: every other use is isolated.
    nonisolated(unsafe) var conn: OpaquePointer?
    nonisolated(unsafe) var session: gnutls_session_t?
    nonisolated(unsafe) let connRef: UnsafeMutablePointer<ngtcp2_crypto_conn_ref>
    nonisolated(unsafe) let path: UnsafeMutablePointer<ngtcp2_path_storage>
    nonisolated(unsafe) let vecs: UnsafeMutablePointer<ngtcp2_vec>
    static let vecCapacity = 16

    /// The peer's UDP address, or its stand-in address when `relayRoute` is set.
    nonisolated let remoteAddress: SocketAddress
    /// `remoteAddress` as the socket needs it (IPv4-mapped on a dual-stack socket).
    nonisolated let wireAddress: SocketAddress
    /// Set when the peer is reached through a relay: every packet goes there, none to the
    /// socket. Fixed for the connection's life (no migration between a relay and UDP).
    nonisolated let relayRoute: RelayRoute?

    /// The path as callers see it.
    nonisolated var quicPath: QUICPath { relayRoute == nil ? .udp(remoteAddress) : .relay }

    // Identities.
    /// The identity we present: chosen by the caller (client) or by SNI (server).
    var localIdentity: TLSIdentity?
    /// Client side: the ID52 we dialled; the server must prove exactly this key.
    let expectedPeer: ID52?
    /// The key the peer proved in its certificate.
    var peerID52: ID52?
    /// How the peer presented that key.
    var peerCertificateType: QUICCertificateType?

    // Lifecycle.
    enum Phase { case handshaking, established, closed }
    var phase = Phase.handshaking
    var closeReason: QUICCloseReason?
    /// Reason found inside a callback, acted on when control returns from ngtcp2.
    var pendingFailure: QUICCloseReason?
    var handshakeCompletedInCallback = false
    /// The handshake is confirmed (server: complete; client: HANDSHAKE_DONE received). ngtcp2
    /// asserts on key updates before that.
    var handshakeConfirmed = false
    var handshakeWaiter: CheckedContinuation<QUICConnection, Error>?
    var closedWaiters: [CheckedContinuation<QUICCloseReason, Never>] = []

    // Connection IDs routed to us by the endpoint.
    var connectionIDs: Set<ConnectionID> = []

    // Streams.
    var streams: [Int64: StreamState] = [:]
    var sendQueue = CircularBuffer<Int64>(initialCapacity: 16)
    var acceptQueue = CircularBuffer<Int64>(initialCapacity: 16)
    var acceptWaiters: [(id: UInt64, continuation: CheckedContinuation<QUICStream, Error>)] = []
    var openWaiters: [(id: UInt64, continuation: CheckedContinuation<Void, Error>)] = []
    var nextWaiterID: UInt64 = 0

    // Connection-level receive credit (see `returnConnectionCredit`).
    /// Bytes buffered in `StreamState.received` across all streams, not yet read.
    var unreadBytes = 0
    /// Of those, bytes whose connection-level credit has not been given back to ngtcp2.
    var withheldConnectionCredit = 0

    // Timer and write scheduling.
    var timer: Scheduled<Void>?
    var timerDeadline: UInt64 = .max
    var writeScheduled = false
    /// In the endpoint's list of connections to answer after the current read batch.
    var pendingWriteQueued = false

    init(
        endpoint: QUICEndpointCore, eventLoop: any EventLoop, tls: TLSContext, configuration: QUICConfiguration,
        isServer: Bool, remoteAddress: SocketAddress, relayRoute: RelayRoute?, localIdentity: TLSIdentity?,
        expectedPeer: ID52?, logger: Logger
    ) {
        self.endpoint = endpoint
        self.eventLoop = eventLoop
        self.tls = tls
        self.configuration = configuration
        self.isServer = isServer
        self.remoteAddress = remoteAddress
        self.wireAddress = endpoint.addressing.wire(remoteAddress)
        self.relayRoute = relayRoute
        self.localIdentity = localIdentity
        self.expectedPeer = expectedPeer
        self.logger = logger
        self.connRef = .allocate(capacity: 1)
        self.connRef.initialize(to: ngtcp2_crypto_conn_ref())
        self.path = .allocate(capacity: 1)
        self.path.initialize(to: ngtcp2_path_storage())
        self.vecs = .allocate(capacity: Self.vecCapacity)
        self.vecs.initialize(repeating: ngtcp2_vec(), count: Self.vecCapacity)
    }

    deinit {
        if let conn { ngtcp2_conn_del(conn) }
        if let session { gnutls_deinit(session) }
        connRef.deallocate()
        path.deallocate()
        vecs.deallocate()
    }

    /// The connection whose GnuTLS session this is, for GnuTLS callbacks.
    static func from(session: gnutls_session_t) -> QUICConnectionCore? {
        guard let ref = gnutls_session_get_ptr(session)?.assumingMemoryBound(to: ngtcp2_crypto_conn_ref.self),
            let userData = ref.pointee.user_data
        else { return nil }
        return Unmanaged<QUICConnectionCore>.fromOpaque(userData).takeUnretainedValue()
    }

    /// The connection an ngtcp2 callback's `user_data` names.
    static func from(userData: UnsafeMutableRawPointer?) -> QUICConnectionCore {
        Unmanaged<QUICConnectionCore>.fromOpaque(userData!).takeUnretainedValue()
    }

    var userData: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func allocateWaiterID() -> UInt64 {
        nextWaiterID &+= 1
        return nextWaiterID
    }

    // MARK: Setting up

    /// `PEERPOOL_NGTCP2_LOG=1` makes ngtcp2 trace every packet to standard error.
    static let ngtcp2Logging = getenv("PEERPOOL_NGTCP2_LOG") != nil

    /// Settings and transport parameters common to both roles.
    private func makeSettings() -> (ngtcp2_settings, ngtcp2_transport_params) {
        var settings = ngtcp2_settings()
        pp_ngtcp2_settings_default(&settings)
        settings.initial_ts = monotonicNow()
        settings.max_tx_udp_payload_size = configuration.maxUDPPayloadSize
        settings.handshake_timeout = configuration.handshakeTimeout.nanoseconds
        settings.max_window = UInt64(configuration.maxConnectionReceiveWindow)
        settings.max_stream_window = UInt64(configuration.maxStreamReceiveWindow)
        settings.cc_algo = NGTCP2_CC_ALGO_CUBIC
        if Self.ngtcp2Logging { pp_ngtcp2_settings_log_to_stderr(&settings) }

        var params = ngtcp2_transport_params()
        pp_ngtcp2_transport_params_default(&params)
        params.initial_max_streams_bidi = UInt64(configuration.maxConcurrentBidirectionalStreams)
        params.initial_max_streams_uni = 0
        params.initial_max_stream_data_bidi_local = UInt64(configuration.initialStreamReceiveWindow)
        params.initial_max_stream_data_bidi_remote = UInt64(configuration.initialStreamReceiveWindow)
        params.initial_max_data = UInt64(configuration.initialConnectionReceiveWindow)
        params.max_idle_timeout = configuration.idleTimeout.nanoseconds
        params.active_connection_id_limit = 4
        return (settings, params)
    }

    private func setPath(local: SocketAddress) {
        local.withSockAddr { localAddr, localLen in
            remoteAddress.withSockAddr { remoteAddr, remoteLen in
                ngtcp2_path_storage_init(path, localAddr, ngtcp2_socklen(localLen), remoteAddr, ngtcp2_socklen(remoteLen), nil)
            }
        }
    }

    /// Creates the client side and queues the first flight.
    func startClient(localAddress: SocketAddress, serverName: ID52) throws {
        setPath(local: localAddress)
        var (settings, params) = makeSettings()
        var dcid = ngtcp2_cid()
        dcid.datalen = 18
        withUnsafeMutableBytes(of: &dcid.data) { _ = gnutls_rnd(GNUTLS_RND_RANDOM, $0.baseAddress, 18) }
        var scid = ConnectionID.random()
        var callbacks = Self.callbacks(client: true)
        var newConn: OpaquePointer?
        let rv = pp_ngtcp2_conn_client_new(
            &newConn, &dcid, &scid, &path.pointee.path, NGTCP2_PROTO_VER_V1, &callbacks, &settings, &params, userData)
        guard rv == 0, let newConn else {
            throw QUICError(.internal, "ngtcp2_conn_client_new: \(ngtcp2Message(rv))")
        }
        conn = newConn
        connectionIDs.insert(ConnectionID(scid))
        try setUpTLS(server: false, serverName: TLSContext.serverName(for: serverName))
    }

    /// Creates the server side for a client's first Initial packet.
    func startServer(localAddress: SocketAddress, header: ngtcp2_pkt_hd) throws {
        setPath(local: localAddress)
        var (settings, params) = makeSettings()
        var header = header
        params.original_dcid = header.dcid
        params.stateless_reset_token_present = 1
        withUnsafeMutableBytes(of: &params.stateless_reset_token) {
            _ = gnutls_rnd(GNUTLS_RND_RANDOM, $0.baseAddress, $0.count)
        }
        var scid = ConnectionID.random()
        var callbacks = Self.callbacks(client: false)
        var newConn: OpaquePointer?
        let rv = pp_ngtcp2_conn_server_new(
            &newConn, &header.scid, &scid, &path.pointee.path, header.version, &callbacks, &settings, &params, userData)
        guard rv == 0, let newConn else {
            throw QUICError(.internal, "ngtcp2_conn_server_new: \(ngtcp2Message(rv))")
        }
        conn = newConn
        connectionIDs.insert(ConnectionID(scid))
        connectionIDs.insert(ConnectionID(header.dcid))
        try setUpTLS(server: true, serverName: nil)
    }

    /// Client side: sends the first flight and waits for the handshake. Cancelling the task
    /// abandons the connection.
    func handshake() async throws -> QUICConnection {
        writePackets()
        endpoint.channel.flush()
        if let closeReason { throw closeReason.error }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<QUICConnection, Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                    terminate(.error("connect cancelled"), closeWith: .application(0, "cancelled"))
                } else if let closeReason {
                    continuation.resume(throwing: closeReason.error)
                } else if phase == .established, let localIdentity, let peerID52 {
                    continuation.resume(returning: QUICConnection(
                        core: self, localID52: localIdentity.id52, remoteID52: peerID52, remoteAddress: remoteAddress, path: quicPath))
                } else {
                    handshakeWaiter = continuation
                }
            }
        } onCancel: {
            self.eventLoop.execute { self.assumeIsolated { $0.cancelHandshake() } }
        }
    }

    private func cancelHandshake() {
        guard let waiter = handshakeWaiter else { return }
        handshakeWaiter = nil
        waiter.resume(throwing: CancellationError())
        terminate(.error("connect cancelled"), closeWith: .application(0, "cancelled"))
    }

    /// Frees ngtcp2 and GnuTLS state. The actor itself may live on (stream handles refer to it)
    /// and answers every later call with its close reason.
    func freeNativeState() {
        if let conn { ngtcp2_conn_del(conn) }
        conn = nil
        if let session { gnutls_deinit(session) }
        session = nil
    }
}

/// ngtcp2's text for a library error code.
func ngtcp2Message(_ code: CInt) -> String {
    String(cString: ngtcp2_strerror(code))
}
