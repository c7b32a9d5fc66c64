import PeerpoolIdentity

/// The client side of an iroh relay connection as a state machine: no sockets and no clock of
/// its own. A driver opens the WebSocket when told (`.openConnection`), feeds in what happens
/// (opened, each binary message, closed) and the current time, performs the returned actions,
/// and calls ``tick(now:)`` at ``nextDeadline``.
///
/// Handshake: wait for the server's challenge, answer with ``RelayFrame/clientAuth(answering:as:)``,
/// wait for the confirmation. Connected: ping every ``Configuration/pingInterval``; a ping not
/// answered within ``Configuration/pongTimeout`` closes the connection and reconnects. Failed or
/// lost connections are retried after a delay doubling from ``Configuration/initialReconnectDelay``
/// to ``Configuration/maximumReconnectDelay``; a successful handshake resets it.
public struct RelayClientStateMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public struct Configuration: Sendable {
        /// How often a connected client pings the relay. Default: 15 s (iroh's).
        public var pingInterval: Duration = .seconds(15)
        /// How long a ping may go unanswered before the connection counts as dead. Default: 5 s (iroh's).
        public var pongTimeout: Duration = .seconds(5)
        /// From opening the WebSocket to the server's confirmation. Default: 10 s.
        public var handshakeTimeout: Duration = .seconds(10)
        /// First delay before reconnecting. Default: 0.5 s.
        public var initialReconnectDelay: Duration = .milliseconds(500)
        /// The delay doubles up to this. Default: 30 s.
        public var maximumReconnectDelay: Duration = .seconds(30)
        public init() {}
    }

    public enum State: Sendable, Equatable {
        case idle
        /// Waiting to reconnect at the instant.
        case waitingToReconnect(at: Instant)
        /// `.openConnection` was returned; waiting for ``connectionOpened(now:)``.
        case opening(deadline: Instant)
        case awaitingChallenge(deadline: Instant)
        case awaitingConfirmation(deadline: Instant)
        /// `outstandingPing`: the payload of the unanswered ping and when it times out.
        case connected(nextPingAt: Instant, outstandingPing: [UInt8]?, pongDeadline: Instant?)
        case stopped
    }

    public enum Action: Sendable, Equatable {
        /// Open the WebSocket to the relay (`GET /relay`, upgrade).
        case openConnection
        /// Send one binary WebSocket message.
        case send([UInt8])
        /// Close the WebSocket; `reason` says why (for logs). A reconnect is already scheduled.
        case closeConnection(reason: DiscoveryError)
        /// The handshake finished: datagrams can be sent.
        case connected
        /// Datagram(s) from `source` (`segmentSize` set for a batch).
        case deliver(source: [UInt8], ecn: UInt8, segmentSize: UInt16?, data: [UInt8])
        /// The relay says `peer` is no longer connected to it.
        case peerGone([UInt8])
        /// The relay's health problem as text (protocol v1's frame 11).
        case health(String)
        /// The relay's status code (protocol v2's frame 13): see ``RelayStatus``.
        case status(UInt64)
        /// The relay announced a restart; returned just before the `.closeConnection`. The
        /// reconnect is scheduled `reconnectIn` from now; `tryFor` is how long the relay expects
        /// to be away (the usual backoff applies after the first attempt).
        case restarting(reconnectIn: Duration, tryFor: Duration)
    }

    public let configuration: Configuration
    private let secretKey: SecretKey
    public private(set) var state: State = .idle
    private var reconnectDelay: Duration
    private var pingCounter: UInt64 = 0

    public init(secretKey: SecretKey, configuration: Configuration = Configuration()) {
        self.secretKey = secretKey
        self.configuration = configuration
        self.reconnectDelay = configuration.initialReconnectDelay
    }

    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    /// When ``tick(now:)`` must next be called; `nil` when nothing is timed.
    public var nextDeadline: Instant? {
        switch state {
        case .idle, .stopped: nil
        case .waitingToReconnect(let at): at
        case .opening(let deadline), .awaitingChallenge(let deadline), .awaitingConfirmation(let deadline): deadline
        case .connected(let nextPingAt, _, let pongDeadline): pongDeadline.map { min($0, nextPingAt) } ?? nextPingAt
        }
    }

    public mutating func start(now: Instant) -> [Action] {
        guard case .idle = state else { return [] }
        state = .opening(deadline: now + configuration.handshakeTimeout)
        return [.openConnection]
    }

    /// Stops for good: closes a connection if there is one.
    public mutating func stop() -> [Action] {
        defer { state = .stopped }
        switch state {
        case .opening, .awaitingChallenge, .awaitingConfirmation, .connected:
            return [.closeConnection(reason: DiscoveryError(.relayStopped, "the relay client was stopped"))]
        default:
            return []
        }
    }

    public mutating func connectionOpened(now: Instant) -> [Action] {
        guard case .opening = state else { return [] }
        state = .awaitingChallenge(deadline: now + configuration.handshakeTimeout)
        return []
    }

    /// The WebSocket closed or failed (not at our request): reconnect after the delay.
    public mutating func connectionClosed(now: Instant) -> [Action] {
        switch state {
        case .opening, .awaitingChallenge, .awaitingConfirmation, .connected:
            scheduleReconnect(now: now)
        default:
            break
        }
        return []
    }

    /// Time passed: reconnect, ping, or give up on an unanswered ping or a slow handshake.
    public mutating func tick(now: Instant) -> [Action] {
        switch state {
        case .waitingToReconnect(let at) where now >= at:
            state = .opening(deadline: now + configuration.handshakeTimeout)
            return [.openConnection]
        case .opening(let deadline) where now >= deadline,
             .awaitingChallenge(let deadline) where now >= deadline,
             .awaitingConfirmation(let deadline) where now >= deadline:
            return fail(now: now, DiscoveryError(.relayTimeout, "the relay handshake did not finish within \(configuration.handshakeTimeout)"))
        case .connected(_, let outstanding?, let pongDeadline?) where now >= pongDeadline:
            return fail(now: now, DiscoveryError(.relayTimeout, "the relay did not answer ping \(hexString(outstanding)) within \(configuration.pongTimeout); reconnecting"))
        case .connected(let nextPingAt, nil, _) where now >= nextPingAt:
            pingCounter += 1
            let payload = (0..<8).reversed().map { UInt8(truncatingIfNeeded: pingCounter >> UInt64($0 * 8)) }
            state = .connected(nextPingAt: now + configuration.pingInterval, outstandingPing: payload, pongDeadline: now + configuration.pongTimeout)
            return send(.ping(payload), now: now)
        default:
            return []
        }
    }

    /// One binary WebSocket message from the relay.
    public mutating func received(_ message: [UInt8], now: Instant) -> [Action] {
        let frame: RelayFrame
        do {
            frame = try RelayFrame(decoding: message)
        } catch {
            return isOpen ? fail(now: now, error) : []
        }
        switch (state, frame) {
        case (.awaitingChallenge, .serverChallenge(let challenge)):
            do {
                let auth = try RelayFrame.clientAuth(answering: challenge, as: secretKey)
                state = .awaitingConfirmation(deadline: now + configuration.handshakeTimeout)
                return send(auth, now: now)
            } catch {
                return fail(now: now, DiscoveryError(.relayFrameMalformed, "could not sign the relay's challenge: \(error)"))
            }
        case (.awaitingConfirmation, .serverConfirmsAuth):
            reconnectDelay = configuration.initialReconnectDelay
            state = .connected(nextPingAt: now + configuration.pingInterval, outstandingPing: nil, pongDeadline: nil)
            return [.connected]
        case (.awaitingConfirmation, .serverDeniesAuth(let reason)), (.awaitingChallenge, .serverDeniesAuth(let reason)):
            return fail(now: now, DiscoveryError(.relayRefused, "the relay refused \(secretKey.id52): \(reason)"))
        case (.connected, .receivedDatagram(let source, let ecn, let data)):
            return [.deliver(source: source, ecn: ecn, segmentSize: nil, data: data)]
        case (.connected, .receivedDatagramBatch(let source, let ecn, let size, let data)):
            return [.deliver(source: source, ecn: ecn, segmentSize: size, data: data)]
        case (.connected, .endpointGone(let peer)):
            return [.peerGone(peer)]
        case (.connected, .ping(let payload)):
            return send(.pong(payload), now: now)
        case (.connected(let nextPingAt, let outstanding, _), .pong(let payload)):
            if payload == outstanding { state = .connected(nextPingAt: nextPingAt, outstandingPing: nil, pongDeadline: nil) }
            return []
        case (.connected, .health(let problem)):
            return [.health(problem)]
        case (.connected, .status(let code)):
            return [.status(code)]
        case (.connected, .restarting(let reconnectIn, let tryFor)):
            let error = DiscoveryError(.relayRestarting, "the relay is restarting; reconnecting in \(reconnectIn) ms")
            state = .waitingToReconnect(at: now + .milliseconds(Int64(reconnectIn)))
            return [
                .restarting(reconnectIn: .milliseconds(Int64(reconnectIn)), tryFor: .milliseconds(Int64(tryFor))),
                .closeConnection(reason: error),
            ]
        case (.connected, .unknown):
            return []
        default:
            guard isOpen else { return [] }
            return fail(now: now, DiscoveryError(.relayFrameMalformed, "unexpected relay frame type \(frame.type) in state \(stateName)"))
        }
    }

    /// Frames a datagram for `destination`; only while connected.
    public mutating func sendDatagram(to destination: ID52, ecn: UInt8 = 0, _ data: [UInt8], now: Instant) throws(DiscoveryError) -> [Action] {
        guard isConnected else {
            throw DiscoveryError(.relayFrameMalformed, "not connected to the relay (\(stateName)); the datagram was not sent")
        }
        return [.send(try RelayFrame.sendDatagram(destination: destination.publicKeyBytes, ecn: ecn, data: data).encoded())]
    }

    private var isOpen: Bool {
        switch state {
        case .opening, .awaitingChallenge, .awaitingConfirmation, .connected: true
        default: false
        }
    }

    private var stateName: String {
        switch state {
        case .idle: "idle"
        case .waitingToReconnect: "waiting to reconnect"
        case .opening: "opening"
        case .awaitingChallenge: "awaiting the challenge"
        case .awaitingConfirmation: "awaiting confirmation"
        case .connected: "connected"
        case .stopped: "stopped"
        }
    }

    private mutating func send(_ frame: RelayFrame, now: Instant) -> [Action] {
        do {
            return [.send(try frame.encoded())]
        } catch {
            return fail(now: now, error)
        }
    }

    private mutating func fail(now: Instant, _ error: DiscoveryError) -> [Action] {
        scheduleReconnect(now: now)
        return [.closeConnection(reason: error)]
    }

    private mutating func scheduleReconnect(now: Instant) {
        state = .waitingToReconnect(at: now + reconnectDelay)
        reconnectDelay = min(reconnectDelay * 2, configuration.maximumReconnectDelay)
    }

    private func hexString(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
