import CZMQ
import Logging
import PeerpoolIdentity
import PeerpoolProtocol
import PeerpoolWire
import Synchronization

/// The application's side of a running `peerpool serve`: streams to peers, opened by the
/// supervisor's workers, over one ZeroMQ DEALER socket (docs/wire-protocol.md).
///
/// It mirrors `PeerPool`: `getStream(_:to:from:timeout:)` returns a `SupervisedStream` once the
/// peer acknowledged the header. The socket lives on a `ZMQReactor` thread of its own
/// ("peerpool-client"); every call hops there and back, so the client may be shared freely
/// between tasks.
///
/// Every wait is bounded. A request the supervisor does not answer within its timeout plus
/// `Configuration.answerSlack` fails locally with `timeout`; when the connection to the
/// supervisor drops (libzmq's socket monitor reports it), every pending request and every open
/// stream fails at once with `supervisor_lost`. libzmq keeps reconnecting in the background, so
/// once a supervisor listens on the endpoint again, new requests just work.
///
/// Call `close()` when done: it fails what is still pending or open with `client_closed` and
/// stops the thread. Dropping the last reference does the same without waiting.
public final class SupervisorClient: Sendable {
    /// How the client talks to the supervisor. Every field has a default; `connect` checks the
    /// ranges.
    public struct Configuration: Sendable {
        /// A request's whole deadline, sent as OPEN's `timeout_ms` (the supervisor's clock runs
        /// from when it reads the request), and the deadline of `status()`. 1 ms ... 600 s.
        /// Default: 10 s. `getStream`'s `timeout` argument overrides it per call.
        public var requestTimeout: Duration = .seconds(10)
        /// Bytes of DATA the supervisor may send on a stream before the client returns CREDIT,
        /// sent as OPEN's `window`. This is also the most a stream ever queues for a slow reader.
        /// 1 ... 16,777,216. Default: 1,048,576 (1 MiB), four of the supervisor's largest frames.
        public var receiveWindow: Int = 1_048_576
        /// Writes are split into DATA frames of at most this many bytes. 1 ... 1,048,576 (the
        /// spec's DATA limit). Default: 262,144, a quarter of the worker's default window, so
        /// four frames are in flight while the first one's CREDIT comes back (a frame as large
        /// as the window would make every write wait a round trip). Each frame costs thread
        /// wake-ups in three processes, so larger frames move more bytes per CPU second.
        public var maxDataFrame: Int = 262_144
        /// How much longer than a request's own timeout the client waits for the supervisor's
        /// answer before failing the request locally with `timeout` (and sending CANCEL). It
        /// covers the supervisor's own `timeout` answer in flight; what it guards against is a
        /// hung or stopped supervisor whose socket stays connected, which would otherwise leave
        /// callers waiting forever. Default: 2 s.
        public var answerSlack: Duration = .seconds(2)
        /// How long `connect` waits for the supervisor to answer a STATUS request before it
        /// throws `supervisor_lost`. Default: 5 s.
        public var connectTimeout: Duration = .seconds(5)

        public init(
            requestTimeout: Duration = .seconds(10), receiveWindow: Int = 1_048_576, maxDataFrame: Int = 262_144,
            answerSlack: Duration = .seconds(2), connectTimeout: Duration = .seconds(5)
        ) {
            self.requestTimeout = requestTimeout
            self.receiveWindow = receiveWindow
            self.maxDataFrame = maxDataFrame
            self.answerSlack = answerSlack
            self.connectTimeout = connectTimeout
        }

        func validate() throws(WireError) {
            guard (1...16_777_216).contains(receiveWindow) else {
                throw WireError(.badRequest, "receiveWindow must be 1...16777216 bytes, not \(receiveWindow)")
            }
            guard (1...1_048_576).contains(maxDataFrame) else {
                throw WireError(.badRequest, "maxDataFrame must be 1...1048576 bytes, not \(maxDataFrame)")
            }
            guard requestTimeout > .zero, answerSlack >= .zero, connectTimeout > .zero else {
                throw WireError(.badRequest, "requestTimeout and connectTimeout must be positive, answerSlack not negative")
            }
        }
    }

    /// The endpoint this client connects to, e.g. `ipc:///run/user/1000/peerpool/frontend.sock`.
    public let endpoint: String
    public let configuration: Configuration
    let reactor: ZMQReactor
    /// Reactor-thread state: the socket, pending requests, open streams.
    let connection: ClientConnection
    /// Non-nil once the client is closed: the error every later call fails with. Everything is
    /// handed to the reactor under this lock, so nothing is queued after the reactor was told to
    /// stop (the reactor drops such work, which would strand a continuation).
    private let closedError = Mutex<WireError?>(nil)
    private let nextID = Atomic<UInt64>(0)

    private init(endpoint: String, configuration: Configuration, reactor: ZMQReactor, connection: ClientConnection) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.reactor = reactor
        self.connection = connection
    }

    deinit {
        shutDown(WireError(.clientClosed, "the SupervisorClient was released"))
    }

    /// Connects to the supervisor's frontend (`ipc://<runtime-dir>/frontend.sock`) and proves one
    /// is there with a STATUS round trip.
    ///
    /// - Throws: `WireError` `supervisor_lost` when no supervisor answers within
    ///   `configuration.connectTimeout`; `bad_request` for a configuration out of range;
    ///   `ZMQError` when libzmq refuses the endpoint.
    public static func connect(
        to endpoint: String, configuration: Configuration = .init(),
        logger: Logger = Logger(label: "peerpool.client", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> SupervisorClient {
        try configuration.validate()
        // The sockets are made on the reactor thread that will own them (`ClientConnection.start`);
        // libzmq's errors still reach the caller, through the start's continuation.
        let context = try ZMQContext()
        let reactor: ZMQReactor
        do { reactor = try ZMQReactor(name: "peerpool-client") } catch {
            context.terminate()
            throw error
        }
        let connection = ClientConnection(reactor: reactor, context: context, configuration: configuration, logger: logger)
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                reactor.start {
                    do {
                        try connection.start(connectingTo: endpoint)
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } catch {
            // The shutdown hook `start` registered closes what it opened and terminates the context.
            reactor.stop()
            await reactor.stopped()
            throw error
        }
        let client = SupervisorClient(endpoint: endpoint, configuration: configuration, reactor: reactor, connection: connection)
        do {
            _ = try await client.status(deadline: configuration.connectTimeout)
        } catch let error as WireError where error.code == .timeout || error.code == .supervisorLost {
            await client.close()
            throw WireError(
                .supervisorLost,
                "no peerpool supervisor answered at \(endpoint) within \(formatSeconds(configuration.connectTimeout)); is `peerpool serve` running?"
            )
        } catch {
            await client.close()
            throw error
        }
        return client
    }

    /// A stream to `peer` carrying `header`, returned once the peer acknowledged the header.
    ///
    /// - Parameters:
    ///   - local: which of the supervisor's identities to connect as; nil for its first.
    ///   - timeout: the request's deadline (OPEN's `timeout_ms`); nil for
    ///     `configuration.requestTimeout`.
    /// - Throws: the supervisor's `WireError` (`worker_crashed`, `connect_failed`, `timeout`,
    ///   ...: docs/wire-protocol.md lists them); `supervisor_lost` or `client_closed`;
    ///   `CancellationError` when the calling task is cancelled (the request is withdrawn with
    ///   CANCEL, and a stream opened anyway is reset).
    public func getStream(_ header: ProtocolHeader, to peer: PeerAddress, from local: ID52? = nil, timeout: Duration? = nil) async throws -> SupervisedStream {
        let timeout = timeout ?? configuration.requestTimeout
        let request = OpenRequest(
            remote: peer.id52, address: try Self.addressField(peer), local: local, header: header,
            timeout: timeout, window: configuration.receiveWindow)
        let body = request.encoded()
        let id = makeID()
        let deadline = ContinuousClock.now + timeout + configuration.answerSlack
        let window = configuration.receiveWindow
        let connection = connection
        let state: SupervisedStreamState = try await perform { continuation in
            connection.open(id: id, body: body, window: window, deadline: deadline, continuation: continuation)
        } onCancel: {
            connection.cancelRequest(id: id)
        }
        return SupervisedStream(header: header, remoteID52: peer.id52, state: state, client: self)
    }

    /// The supervisor's STATUS_REPLY: its workers, their states and counters.
    ///
    /// - Throws: `timeout` after `configuration.requestTimeout` + `answerSlack`,
    ///   `supervisor_lost`, `client_closed`, `protocol_violation` for a body that does not
    ///   decode, `CancellationError`.
    public func status() async throws -> SupervisorStatus {
        try await status(deadline: configuration.requestTimeout + configuration.answerSlack)
    }

    func status(deadline delay: Duration) async throws -> SupervisorStatus {
        let id = makeID()
        let deadline = ContinuousClock.now + delay
        let connection = connection
        return try await perform { continuation in
            connection.status(id: id, deadline: deadline, continuation: continuation)
        } onCancel: {
            connection.cancelRequest(id: id)
        }
    }

    /// Fails every pending request and open stream with `client_closed`, stops the client's
    /// thread and closes its socket. Later calls throw `client_closed`. Idempotent.
    public func close() async {
        shutDown(WireError(.clientClosed, "the SupervisorClient was closed"))
        await reactor.stopped()
    }

    private func shutDown(_ error: WireError) {
        let connection = connection
        let reactor = reactor
        closedError.withLock { closed in
            guard closed == nil else { return }
            closed = error
            reactor.execute { connection.failAll(error) }
            reactor.stop()
        }
    }

    // MARK: Handing work to the reactor

    /// A fresh non-zero id for a request, or a token for one read or write (one counter: ids
    /// only need to be unique among the requests waiting for an answer).
    func makeID() -> UInt64 {
        nextID.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Queues `work` on the reactor thread, or returns the error the client was closed with.
    func submit(_ work: @escaping @Sendable () -> Void) -> WireError? {
        closedError.withLock { closed in
            if let closed { return closed }
            reactor.execute(work)
            return nil
        }
    }

    /// Runs `start` on the reactor thread with a continuation it must resume (or store where
    /// every path resumes it), and `onCancel` there if the calling task is cancelled meanwhile.
    ///
    /// `onCancel` is queued after `start` (a per-call token orders them), or not at all when the
    /// task was cancelled before `start` was queued: then this throws `CancellationError` without
    /// having started anything.
    func perform<T: Sendable>(
        _ start: @escaping @Sendable (CheckedContinuation<T, any Error>) -> Void,
        onCancel: @escaping @Sendable () -> Void
    ) async throws -> T {
        let token = ClientCallToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let error = token.start { () -> (any Error)? in
                    self.submit { start(continuation) }
                }
                if let error { continuation.resume(throwing: error) }
            }
        } onCancel: {
            token.cancel { _ = self.submit(onCancel) }
        }
    }

    /// `perform` for what must happen even in a cancelled task (FINISH, RESET) and never parks.
    func performUncancellable<T: Sendable>(_ start: @escaping @Sendable (CheckedContinuation<T, any Error>) -> Void) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            if let error = submit({ start(continuation) }) { continuation.resume(throwing: error) }
        }
    }

    /// Queues `work` if the client is open; drops it otherwise (for fire-and-forget messages:
    /// RESET from a stream's deinit).
    func submitIfOpen(_ work: @escaping @Sendable () -> Void) {
        _ = submit(work)
    }

    /// OPEN's `address`: `host:port`, `[v6]:port`; nil without a socket address.
    static func addressField(_ peer: PeerAddress) throws(WireError) -> String? {
        guard let socketAddress = peer.socketAddress else { return nil }
        guard let ip = socketAddress.ipAddress, let port = socketAddress.port else {
            throw WireError(.badRequest, "\(peer): a supervisor reaches peers at IP addresses, not \(socketAddress)")
        }
        return socketAddress.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Orders a call's start and its cancellation: whichever comes first decides, under one lock,
/// whether the cancellation work is queued (after the start) or the start never happens.
final class ClientCallToken: Sendable {
    private struct State {
        var started = false
        var cancelled = false
    }

    private let state = Mutex(State())

    /// Runs `body` (which queues the start) unless the call was already cancelled; returns its
    /// error, or `CancellationError` when cancelled first.
    func start(_ body: () -> (any Error)?) -> (any Error)? {
        state.withLock { state in
            if state.cancelled { return CancellationError() }
            state.started = true
            return body()
        }
    }

    /// Runs `body` (which queues the cancellation) if the start was queued.
    func cancel(_ body: () -> Void) {
        state.withLock { state in
            state.cancelled = true
            if state.started { body() }
        }
    }
}

/// `5 s`, `0.25 s`: a duration for messages.
func formatSeconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let value = Double(seconds) + Double(attoseconds) / 1e18
    if value == value.rounded() { return "\(Int64(value)) s" }
    return "\((value * 1000).rounded() / 1000) s"
}
