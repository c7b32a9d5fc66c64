import Foundation
import PeerpoolPool

/// Everything `peerpool serve` can be told: how many workers, where its sockets live, which
/// identities it speaks as, how it watches and restarts workers, and the limits that bound every
/// queue and window. Read from YAML by `init(contentsOfFile:)` (snake_case keys, durations in
/// seconds; `deploy/peerpool.yaml` lists them all); check with ``validated()`` before use.
public struct SupervisorConfiguration: Sendable {
    // MARK: Processes and files

    /// Worker processes, each owning the peers `ShardMap` assigns it. More workers use more cores
    /// and confine a crash to fewer peers; each holds its own connections, so peers are not
    /// shared between workers. 1 … 1024. Default: the number of active cores (at most 1024).
    public var workers: Int = SupervisorConfiguration.defaultWorkers()

    /// Directory holding the supervisor's sockets (`frontend.sock`, `workers.sock`). Its mode
    /// (0700, owned by the user running the supervisor) is what keeps other users out; the
    /// supervisor creates it or refuses one that others can enter. Absolute, and short enough
    /// that `<dir>/frontend.sock` fits a Unix socket address (at most 93 bytes).
    /// Default: `$XDG_RUNTIME_DIR/peerpool`, else `/tmp/peerpool-<uid>`
    /// (``defaultRuntimeDirectory(environment:uid:)``).
    public var runtimeDirectory: String = SupervisorConfiguration.defaultRuntimeDirectory()

    /// The program and arguments that start one worker. `nil` runs this executable with the
    /// argument `worker`, which is what a deployment wants; tests point it at a stand-in.
    /// Default: `nil`.
    public var workerCommand: [String]? = nil

    /// Secret-key files (`peerpool id generate --file …`, mode 0600) of the identities the
    /// workers connect as; the first is the default `self` of an OPEN. A persistent identity is
    /// what lets peers recognise this pool across restarts. Empty: ``ephemeralIdentities`` fresh
    /// ones. Default: empty.
    public var keyFiles: [String] = []

    /// Identities generated at start (and lost at exit) when ``keyFiles`` is empty. Ignored when
    /// key files are given. 1 … 1024. Default: 1.
    public var ephemeralIdentities: Int = 1

    /// A file of `ID52 host:port [host:port …]` lines, the workers' `AddressBook` for peers an
    /// OPEN names without an `address`. `nil`: such a request fails with `no_address`.
    /// Default: `nil`.
    public var addressBook: String? = nil

    // MARK: Watching workers

    /// How often each worker sends HEARTBEAT (with its connection, stream and request counts).
    /// Default: 250 ms.
    public var heartbeatInterval: Duration = .milliseconds(250)

    /// A worker that sends nothing for this long is killed (SIGKILL) as hung and restarted; its
    /// requests and streams fail with `worker_hung`. Must be more than ``heartbeatInterval``;
    /// several intervals keep a briefly busy worker alive. Default: 3 s.
    public var hangTimeout: Duration = .seconds(3)

    /// A spawned worker must send HELLO within this long, else it is killed and counted as a
    /// failed start (a restart, for ``maxRestarts``). Requests for its shard wait meanwhile.
    /// Default: 10 s.
    public var startTimeout: Duration = .seconds(10)

    // MARK: Restarting workers

    /// Restart intensity, as Erlang/OTP supervisors: more than this many restarts of one shard's
    /// worker within ``restartWindow`` puts the shard in backoff instead of restarting at once,
    /// so a worker that crashes on start does not spin. 0: back off after any restart in the
    /// window. Default: 5.
    public var maxRestarts: Int = 5

    /// The sliding window ``maxRestarts`` counts restarts in. Default: 10 s.
    public var restartWindow: Duration = .seconds(10)

    /// The first wait of a shard in backoff; each further backoff doubles it up to ``maxBackoff``,
    /// and a worker that then stays up for ``restartWindow`` resets it. Requests for the shard fail
    /// with `worker_unavailable` (naming when it retries) during the wait. Default: 500 ms.
    public var initialBackoff: Duration = .milliseconds(500)

    /// The longest backoff wait. At least ``initialBackoff``. Default: 30 s.
    public var maxBackoff: Duration = .seconds(30)

    /// On SIGTERM the supervisor takes no new requests (`shutting_down`), sends each worker
    /// SHUTDOWN, and lets requests and streams in flight finish for this long; workers still
    /// running after it are killed. A systemd unit's `TimeoutStopSec` should be a little longer.
    /// Default: 10 s.
    public var shutdownGracePeriod: Duration = .seconds(10)

    // MARK: Requests and clients

    /// Deadline of an OPEN that gives no `timeout_ms`, from the moment the supervisor reads it,
    /// including any wait for a starting worker. Default: 10 s.
    public var defaultRequestTimeout: Duration = .seconds(10)

    /// The longest `timeout_ms` an OPEN may ask for; longer ones are refused with `bad_request`.
    /// At least ``defaultRequestTimeout``. Default: 600 s.
    public var maxRequestTimeout: Duration = .seconds(600)

    /// Requests one client may have waiting for an answer; past it, `too_many_requests` at once.
    /// Default: 10,000.
    public var maxRequestsPerClient: Int = 10_000

    /// Streams one client may have open; past it, an OPEN fails with `too_many_streams`.
    /// Default: 10,000.
    public var maxStreamsPerClient: Int = 10_000

    /// Streams one client may have open *or opening* to one peer; past it, an OPEN to that peer
    /// fails at once with `too_many_streams`. A fair share of the peer's connection, which every
    /// client of the supervisor shares: QUIC lets 100 streams run at once per connection (the
    /// pool's default) and further opens wait for a slot, so one greedy client could otherwise
    /// hold every slot and make everyone else's opens wait until `ack_timeout`. Default: 50,
    /// half the connection's streams.
    public var maxStreamsPerClientPerPeer: Int = 50

    /// Requests held for a shard while its worker starts or restarts; past it, further requests
    /// for the shard are refused at once (the error names this limit). 0: never hold, refuse at
    /// once. Default: 10,000.
    public var maxPendingPerShard: Int = 10_000

    // MARK: Flow control

    /// The flow-control window per stream and direction, in bytes: what a worker grants a client
    /// for client → peer DATA, and what it may send a client before CREDIT when an OPEN gives no
    /// `window`. Bounds the bytes in flight per stream. 1 … ``maxWindow``. Default: 1,048,576
    /// (1 MiB): with 256 KiB frames four are in flight, and `bench supervisor` measured upload
    /// through the supervisor at 0.79 of the in-process pool with 256 KiB windows and 64 KiB
    /// frames against 1.1 with these.
    public var defaultWindow: Int = 1_048_576

    /// The largest `window` an OPEN may ask for; larger ones are refused with `bad_request`.
    /// Bounds the bytes in flight per stream. 1 … 4,294,967,295 (CREDIT is 4 bytes).
    /// Default: 16,777,216 (16 MiB).
    public var maxWindow: Int = 16_777_216

    // MARK: Workers' pools

    /// The `PeerPool` configuration every worker runs with: connect and ack timeouts, pings,
    /// connection and waiter caps. Default: `PoolConfiguration()`.
    public var pool: PoolConfiguration = PoolConfiguration()

    public init() {}
}

// MARK: - Defaults

extension SupervisorConfiguration {
    /// The range ``workers`` must lie in.
    static let workerRange = 1...1024

    /// The longest a Unix socket path may be on Linux (`sun_path` is 108 bytes with its NUL).
    static let maxSocketPathLength = 107

    /// The longest ``runtimeDirectory``, so that its longest socket path still fits.
    static let maxRuntimeDirectoryLength = maxSocketPathLength - "/frontend.sock".utf8.count

    /// The longest any duration may be (each must also be at least 1 ms): guards the arithmetic on deadlines and catches values
    /// meant as milliseconds.
    static let maxDuration: Duration = .seconds(86_400)

    /// The largest QUIC application error code (a variable-length integer, 62 bits).
    static let maxCloseCode: UInt64 = (1 << 62) - 1

    /// One worker per active core, within ``workerRange``.
    public static func defaultWorkers(activeProcessorCount: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int {
        min(max(activeProcessorCount, workerRange.lowerBound), workerRange.upperBound)
    }

    /// `$XDG_RUNTIME_DIR/peerpool` when `XDG_RUNTIME_DIR` is set to an absolute path (the XDG
    /// base directory spec says to ignore an empty or relative one), else `/tmp/peerpool-<uid>`.
    /// The uid keeps users sharing `/tmp` apart; the supervisor still checks the directory's owner
    /// and mode, since anyone can create a directory of that name first.
    public static func defaultRuntimeDirectory(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        uid: UInt32 = UInt32(getuid())
    ) -> String {
        if var base = environment["XDG_RUNTIME_DIR"], base.hasPrefix("/") {
            while base.count > 1 && base.hasSuffix("/") {
                base.removeLast()
            }
            return base == "/" ? "/peerpool" : "\(base)/peerpool"
        }
        return "/tmp/peerpool-\(uid)"
    }
}

// MARK: - Validation

extension SupervisorConfiguration {
    /// This configuration, if every field is in range and consistent with the others; else a
    /// `SupervisorConfigurationError` (`.invalidValue`) naming the first field at fault by its
    /// YAML key (`hang_timeout`, `pool.connect_timeout`).
    public func validated() throws -> SupervisorConfiguration {
        try Self.check(workers, in: Self.workerRange, key: "workers")

        let directoryLength = runtimeDirectory.utf8.count
        guard runtimeDirectory.hasPrefix("/") else {
            throw invalid("runtime_directory", "must be an absolute path (got \"\(runtimeDirectory)\")")
        }
        guard !runtimeDirectory.utf8.contains(0) else {
            throw invalid("runtime_directory", "must not contain a NUL character")
        }
        guard directoryLength <= Self.maxRuntimeDirectoryLength else {
            throw invalid(
                "runtime_directory",
                "is \(directoryLength) bytes long; at most \(Self.maxRuntimeDirectoryLength), so that "
                    + "<dir>/frontend.sock fits in a Unix socket address (\(Self.maxSocketPathLength) bytes)"
            )
        }
        if let workerCommand {
            guard let program = workerCommand.first, !program.isEmpty else {
                throw invalid("worker_command", "must name a program to run (got an empty command)")
            }
        }
        for (index, file) in keyFiles.enumerated() where file.isEmpty {
            throw invalid("key_files", "entry \(index + 1) is an empty path")
        }
        try Self.check(ephemeralIdentities, in: 1...1024, key: "ephemeral_identities")
        if let addressBook, addressBook.isEmpty {
            throw invalid("address_book", "must be a path (got an empty string)")
        }

        try Self.check(heartbeatInterval, key: "heartbeat_interval")
        try Self.check(hangTimeout, key: "hang_timeout")
        guard hangTimeout > heartbeatInterval else {
            throw invalid(
                "hang_timeout",
                "must be more than heartbeat_interval (\(Self.seconds(heartbeatInterval)) s), "
                    + "else a healthy worker is killed (got \(Self.seconds(hangTimeout)))"
            )
        }
        try Self.check(startTimeout, key: "start_timeout")
        try Self.check(maxRestarts, in: 0...Int.max, key: "max_restarts")
        try Self.check(restartWindow, key: "restart_window")
        try Self.check(initialBackoff, key: "initial_backoff")
        try Self.check(maxBackoff, key: "max_backoff")
        guard maxBackoff >= initialBackoff else {
            throw invalid(
                "max_backoff",
                "must be at least initial_backoff (\(Self.seconds(initialBackoff)) s) "
                    + "(got \(Self.seconds(maxBackoff)))"
            )
        }
        try Self.check(shutdownGracePeriod, key: "shutdown_grace_period")

        try Self.check(defaultRequestTimeout, key: "default_request_timeout")
        try Self.check(maxRequestTimeout, key: "max_request_timeout")
        guard maxRequestTimeout >= defaultRequestTimeout else {
            throw invalid(
                "max_request_timeout",
                "must be at least default_request_timeout (\(Self.seconds(defaultRequestTimeout)) s) "
                    + "(got \(Self.seconds(maxRequestTimeout)))"
            )
        }
        try Self.check(maxRequestsPerClient, in: 1...Int.max, key: "max_requests_per_client")
        try Self.check(maxStreamsPerClient, in: 1...Int.max, key: "max_streams_per_client")
        try Self.check(maxStreamsPerClientPerPeer, in: 1...Int.max, key: "max_streams_per_client_per_peer")
        try Self.check(maxPendingPerShard, in: 0...Int.max, key: "max_pending_per_shard")

        try Self.check(maxWindow, in: 1...Int(UInt32.max), key: "max_window")
        guard defaultWindow >= 1 && defaultWindow <= maxWindow else {
            throw invalid(
                "default_window",
                "must be between 1 and max_window (\(maxWindow)) (got \(defaultWindow))"
            )
        }

        try Self.check(pool.connectTimeout, key: "pool.connect_timeout")
        try Self.check(pool.ackTimeout, key: "pool.ack_timeout")
        try Self.check(pool.pingInterval, key: "pool.ping_interval")
        try Self.check(pool.idlePeriodsBeforeClose, in: 1...Int.max, key: "pool.idle_periods_before_close")
        try Self.check(pool.maxConnections, in: 1...Int.max, key: "pool.max_connections")
        try Self.check(pool.maxWaitersPerPeer, in: 1...Int.max, key: "pool.max_waiters_per_peer")
        guard pool.closeCode <= Self.maxCloseCode else {
            throw invalid(
                "pool.close_code",
                "must be at most \(Self.maxCloseCode), the largest QUIC error code (got \(pool.closeCode))"
            )
        }
        return self
    }

    private func invalid(_ key: String, _ message: String) -> SupervisorConfigurationError {
        SupervisorConfigurationError(.invalidValue, key: key, message)
    }

    private static func check(_ value: Int, in range: ClosedRange<Int>, key: String) throws {
        guard !range.contains(value) else { return }
        let message =
            range.upperBound == Int.max
            ? "must be at least \(range.lowerBound) (got \(value))"
            : "must be between \(range.lowerBound) and \(range.upperBound) (got \(value))"
        throw SupervisorConfigurationError(.invalidValue, key: key, message)
    }

    /// A duration must be more than zero, a whole number of milliseconds or more (the wire
    /// protocol and the workers' settings count milliseconds), and at most ``maxDuration``.
    private static func check(_ value: Duration, key: String) throws {
        if value <= .zero {
            throw SupervisorConfigurationError(
                .invalidValue, key: key, "must be more than 0 seconds (got \(seconds(value)))")
        }
        if value < .milliseconds(1) {
            throw SupervisorConfigurationError(
                .invalidValue, key: key,
                "must be at least 0.001 seconds, as the protocol counts milliseconds (got \(seconds(value)))")
        }
        if value > maxDuration {
            throw SupervisorConfigurationError(
                .invalidValue, key: key,
                "must be at most \(seconds(maxDuration)) seconds (got \(seconds(value)))")
        }
    }

    /// A duration as the number of seconds a configuration file would hold: `3`, `0.25`, `-1`.
    static func seconds(_ duration: Duration) -> String {
        let (whole, attoseconds) = duration.components
        if attoseconds == 0 {
            return "\(whole)"
        }
        return "\(Double(whole) + Double(attoseconds) / 1e18)"
    }
}
