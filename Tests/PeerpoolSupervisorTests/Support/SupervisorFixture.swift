import CZMQ
import Foundation
import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The fixtures of the supervisor's integration tests (SupervisorTests, SupervisorCrashTests,
// SupervisorInputTests, SupervisorProcessTests): real worker processes, real `peerpool listen`
// peers, real kills. Every wait here has a deadline, every loop a bound on its turns, and every
// process started here is killed and reaped, also when a test fails half-way.

/// Bounds shared by the integration tests. Generous: the CI machine has two loaded cores and
/// runs debug builds; the tests assert on outcomes, never on speed.
enum SupervisorFixture {
    /// The longest anything that should happen may take (a worker to start, a request to be
    /// answered, a process to exit).
    static let deadline: Duration = .seconds(90)
    /// How often a bounded polling loop looks again.
    static let pollInterval: Duration = .milliseconds(20)
    /// Set `PEERPOOL_TEST_LOG=1` to see the supervisor's and workers' logs on standard error.
    static let verbose = ProcessInfo.processInfo.environment["PEERPOOL_TEST_LOG"] == "1"

    static var logger: Logger {
        if verbose {
            var logger = Logger(label: "peerpool.supervisor.test", factory: { StreamLogHandler.standardError(label: $0) })
            logger.logLevel = .debug
            return logger
        }
        // The supervisor passes its level on to its workers (`--log-level`): quiet them too.
        var logger = Logger(label: "peerpool.supervisor.test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }

    /// `peerpool worker`; the supervisor appends `--supervisor-pid` and its own `--log-level`.
    static var workerCommand: [String] {
        [peerpoolExecutable.path, "worker"]
    }

    /// `count` fresh secret keys whose ID52s the shard map of `workers` workers gives to each of
    /// `shards` (so `keys(on: [0, 0, 1], workers: 2)` is two keys of shard 0 and one of shard 1,
    /// in that order). Bounded: rendezvous hashing spreads keys evenly, so this takes a few tries.
    static func keys(on shards: [Int], workers: Int) throws -> [SecretKey] {
        let map = ShardMap(workerCount: workers)
        var keys: [SecretKey?] = Array(repeating: nil, count: shards.count)
        for _ in 0..<(shards.count * workers * 200) {
            let key = SecretKey.generate()
            if let slot = shards.indices.first(where: { keys[$0] == nil && shards[$0] == map.worker(for: key.id52) }) {
                keys[slot] = key
            }
            if !keys.contains(where: { $0 == nil }) { return keys.map { $0! } }
        }
        throw TestSupportError("could not find keys for shards \(shards) of \(workers) workers")
    }

    /// `count` fresh ID52s on `shard` of `workers` workers (peers nobody serves).
    static func id52s(onShard shard: Int, count: Int, workers: Int) throws -> [ID52] {
        try keys(on: Array(repeating: shard, count: count), workers: workers).map(\.id52)
    }

    /// Polls `condition` until it holds; throws, naming `what`, when `timeout` passes first.
    /// For observing a change of process state (a pid, a worker's state), not for timing.
    @discardableResult
    static func waitForValue<T>(
        _ what: @autoclosure () -> String, within timeout: Duration = deadline,
        _ condition: () async throws -> T?
    ) async throws -> T {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        for _ in 0..<1_000_000 {
            if let value = try await condition() { return value }
            guard clock.now < end else { break }
            try await Task.sleep(for: pollInterval)
        }
        throw TestSupportError("waited \(timeout) for \(what())")
    }

    /// Polls until `condition` is true; throws when `timeout` passes first.
    static func waitUntil(
        _ what: @autoclosure () -> String, within timeout: Duration = deadline, _ condition: () async throws -> Bool
    ) async throws {
        try await waitForValue(what(), within: timeout) { () async throws -> Bool? in try await condition() ? true : nil }
    }
}

// MARK: - Processes

/// One process as seen at a moment: its pid and its start time (field 22 of /proc/<pid>/stat),
/// so that a later check or kill never hits another process that reused the pid.
struct ProcessIdentity: Hashable, Sendable, CustomStringConvertible {
    let pid: Int32
    /// nil when the pid named no process when this was made.
    let startTime: String?

    init(_ pid: Int32) {
        self.pid = pid
        startTime = ProcessTable.statFields(pid)?[19]
    }

    /// Still the same process, and neither a zombie nor dead: a killed process whose parent has
    /// not reaped it yet counts as gone.
    var isAlive: Bool {
        guard let startTime, let fields = ProcessTable.statFields(pid), fields[19] == startTime else { return false }
        return fields[0] != "Z" && fields[0] != "X"
    }

    var description: String { "pid \(pid)" }
}

/// Process-table facts from /proc, for pids that are not our children (we cannot wait for them).
enum ProcessTable {
    /// The fields of /proc/<pid>/stat after the command name: [0] is the state, [19] the start
    /// time. nil if the process is gone.
    static func statFields(_ pid: Int32) -> [String]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ").map(String.init)
        return fields.count > 19 ? fields : nil
    }

    /// Live (not zombie) processes whose process group is `group` (field 5 of /proc/<pid>/stat).
    static func members(ofGroup group: Int32) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap(Int32.init).filter { pid in
            guard let fields = statFields(pid) else { return false }
            return fields[2] == "\(group)" && fields[0] != "Z" && fields[0] != "X"
        }
    }

    /// Resident set size of `pid` in bytes (VmRSS of /proc/<pid>/status), nil if it is gone.
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kilobytes = Int(fields[1]) { return kilobytes * 1024 }
        }
        return nil
    }

    /// Waits until none of `processes` is alive; SIGKILLs the ones still alive after `timeout`
    /// and returns their pids (empty when all went on their own).
    @discardableResult
    static func waitUntilGone(_ processes: [ProcessIdentity], within timeout: Duration = SupervisorFixture.deadline) async -> [Int32] {
        let gone = try? await SupervisorFixture.waitForValue("\(processes) to exit", within: timeout) { () -> Bool? in
            processes.contains(where: \.isAlive) ? nil : true
        }
        if gone != nil { return [] }
        let alive = processes.filter(\.isAlive)
        for process in alive { kill(process.pid, SIGKILL) }
        return alive.map(\.pid)
    }
}

/// A private scratch directory with a short path (`/tmp/pp-XXXXXX`, mode 0700 from mkdtemp):
/// short because ipc:// socket paths are limited to about 107 bytes. Serves as a supervisor's
/// runtime directory and holds the test's key files, scripts and logs.
struct ScratchDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/pp-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestSupportError("mkdtemp /tmp/pp-XXXXXX failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A bounded queue of values from another thread, taken one at a time with a deadline. One
/// consumer at a time.
final class BoundedInbox<Value: Sendable>: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Value?, Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var values: [Value] = []
        var head = 0
        var finished = false
        var dropped = 0
        var waiter: Waiter?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Values dropped because the inbox was full: a test that sees any failed to keep up.
    var dropped: Int { state.withLock { $0.dropped } }

    func post(_ value: Value) {
        let waiter = state.withLock { state -> Waiter? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            if state.values.count - state.head < capacity {
                state.values.append(value)
            } else {
                state.dropped += 1
            }
            return nil
        }
        waiter?.timer?.cancel()
        waiter?.continuation.resume(returning: value)
    }

    /// No more values: a waiting and every later `next` gets nil once the queue is empty.
    func finish() {
        let waiter = state.withLock { state -> Waiter? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.timer?.cancel()
        waiter?.continuation.resume(returning: nil)
    }

    /// The next value; nil when none arrives within `timeout` or the inbox is finished.
    func next(within timeout: Duration) async -> Value? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Value?? in
                if state.head < state.values.count {
                    let value = state.values[state.head]
                    state.head += 1
                    if state.head > 1024 && state.head * 2 > state.values.count {
                        state.values.removeFirst(state.head)
                        state.head = 0
                    }
                    return .some(value)
                }
                if state.finished { return .some(nil) }
                precondition(state.waiter == nil, "BoundedInbox has one consumer at a time")
                state.nextID += 1
                let id = state.nextID
                state.waiter = Waiter(id: id, continuation: continuation, timer: nil)
                let timer = Task { [self] in
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    let expired = self.state.withLock { state -> Waiter? in
                        guard state.waiter?.id == id else { return nil }
                        defer { state.waiter = nil }
                        return state.waiter
                    }
                    expired?.continuation.resume(returning: nil)
                }
                state.waiter?.timer = timer
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// Runs `executable arguments` to its end with empty standard input (killed after `timeout`),
/// collecting its output; its `status` is nil if it was killed at the deadline.
func runProgram(_ executable: String, _ arguments: [String], timeout: Duration = SupervisorFixture.deadline) async throws -> TestChild.Output {
    var command = TestChild.Command.program(executable, arguments)
    command.standardInput = .null
    return try await TestChild.run(command, within: timeout)
}

// MARK: - Peers

/// `peerpool listen --exit-on-stdin-eof` serving the given identities (written as key files in a
/// scratch directory) on a free loopback port: Ping, echo, source and sink.
final class PeerListener: Sendable {
    let listen: ListenProcess
    let address: SocketAddress
    let identities: [ID52]
    private let directory: ScratchDirectory

    init(keys: [SecretKey]) async throws {
        let directory = try ScratchDirectory()
        self.directory = directory
        var arguments: [String] = []
        let listen: ListenProcess
        do {
            for (index, key) in keys.enumerated() {
                let file = directory.file("peer-\(index).private-key")
                try key.save(toFile: file)
                arguments += ["--key-file", file]
            }
            listen = try await ListenProcess(arguments, within: SupervisorFixture.deadline)
        } catch {
            directory.remove()
            throw error
        }
        guard listen.identities == keys.map(\.id52), let address = try? SocketAddress(ipAddress: listen.host, port: listen.port) else {
            await listen.kill()
            directory.remove()
            throw TestSupportError("peerpool listen serves \(listen.identities), not the key files' \(keys.map(\.id52))")
        }
        self.listen = listen
        self.address = address
        identities = listen.identities
    }

    /// `id52` at this listener's address.
    func peer(_ id52: ID52) -> PeerAddress { PeerAddress(id52, at: address) }

    /// `127.0.0.1:<port>`.
    var hostPort: String { "\(listen.host):\(listen.port)" }

    /// Ends its standard input (its signal to exit) and waits; kills it if it lingers.
    func stop() async {
        _ = await listen.stop(within: .seconds(10))
        directory.remove()
    }

    deinit { directory.remove() }
}

/// A UDP port on loopback that reads nothing and answers nothing: a peer that never responds, so
/// requests to it stay in flight until the pool's connect timeout. Owns its socket.
final class SilentPeer: Sendable {
    let descriptor: Int32
    let address: SocketAddress

    init() throws {
        // Close-on-exec: a child spawned meanwhile (a worker, a listener) must not hold it.
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        var bound = sockaddr_in()
        bound.sin_family = sa_family_t(AF_INET)
        bound.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &bound) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
            }
        }
        guard ok else {
            let error = String(cString: strerror(errno))
            close(descriptor)
            throw TestSupportError("binding a silent UDP socket: \(error)")
        }
        self.descriptor = descriptor
        address = try SocketAddress(ipAddress: "127.0.0.1", port: Int(UInt16(bigEndian: bound.sin_port)))
    }

    func peer(_ id52: ID52) -> PeerAddress { PeerAddress(id52, at: address) }

    var hostPort: String { "127.0.0.1:\(address.port!)" }

    deinit { close(descriptor) }
}

// MARK: - An embedded supervisor

/// A `Supervisor` in the test process with real `peerpool worker` processes, its runtime
/// directory a fresh scratch directory, and a `SupervisorClient` connected to it.
final class EmbeddedSupervisor: Sendable {
    let supervisor: Supervisor
    let client: SupervisorClient
    let directory: ScratchDirectory
    /// Every worker process seen, so that teardown can check that none outlives the supervisor.
    private let seen = Mutex<Set<ProcessIdentity>>([])

    private init(supervisor: Supervisor, client: SupervisorClient, directory: ScratchDirectory) {
        self.supervisor = supervisor
        self.client = client
        self.directory = directory
    }

    /// The configuration the tests start from: `workers` workers, quick heartbeats, a 30 s
    /// connect timeout (requests to a silent peer stay in flight), a short drain at teardown.
    static func configuration(workers: Int, directory: ScratchDirectory) -> SupervisorConfiguration {
        var configuration = SupervisorConfiguration()
        configuration.workers = workers
        configuration.runtimeDirectory = directory.path
        configuration.workerCommand = SupervisorFixture.workerCommand
        configuration.heartbeatInterval = .milliseconds(100)
        // Far above a heartbeat's worst delay while the whole suite loads both cores: only the
        // hang tests (which set their own) should ever see a worker declared hung.
        configuration.hangTimeout = .seconds(20)
        configuration.shutdownGracePeriod = .seconds(1)
        configuration.defaultRequestTimeout = .seconds(30)
        configuration.pool.connectTimeout = .seconds(30)
        configuration.pool.ackTimeout = .seconds(30)
        return configuration
    }

    /// Starts a supervisor in `directory` (a fresh one by default), waits until
    /// `waitForWorkers` (default: all) of its workers run, and connects a client.
    static func start(
        workers: Int = 2, directory: ScratchDirectory? = nil, waitForWorkers: Bool = true,
        client clientConfiguration: SupervisorClient.Configuration = .init(requestTimeout: .seconds(30)),
        _ configure: (inout SupervisorConfiguration) throws -> Void = { _ in }
    ) async throws -> EmbeddedSupervisor {
        let directory = try directory ?? ScratchDirectory()
        var configuration = configuration(workers: workers, directory: directory)
        try configure(&configuration)
        let supervisor = try Supervisor(configuration: configuration, identities: [SecretKey.generate()], logger: SupervisorFixture.logger)
        let client: SupervisorClient
        do {
            try await supervisor.start()
            client = try await supervisor.client(configuration: clientConfiguration)
        } catch {
            await supervisor.shutdown()
            throw error
        }
        let embedded = EmbeddedSupervisor(supervisor: supervisor, client: client, directory: directory)
        if waitForWorkers {
            do { _ = try await embedded.runningPIDs() } catch {
                await embedded.stop()
                throw error
            }
        }
        return embedded
    }

    /// Runs `body` with a started supervisor and stops it afterwards, whatever `body` did. The
    /// runtime directory is removed too, unless the caller passed it.
    static func with<T>(
        workers: Int = 2, directory: ScratchDirectory? = nil, waitForWorkers: Bool = true,
        client clientConfiguration: SupervisorClient.Configuration = .init(requestTimeout: .seconds(30)),
        _ configure: (inout SupervisorConfiguration) throws -> Void = { _ in },
        _ body: (EmbeddedSupervisor) async throws -> T
    ) async throws -> T {
        let scratch = try directory ?? ScratchDirectory()
        defer { if directory == nil { scratch.remove() } }
        let embedded = try await start(
            workers: workers, directory: scratch, waitForWorkers: waitForWorkers, client: clientConfiguration, configure)
        let result: T
        do {
            result = try await body(embedded)
        } catch {
            await embedded.stop()
            throw error
        }
        await embedded.stop()
        return result
    }

    /// The workers' pids once every shard's worker runs (status `running` with a pid).
    @discardableResult
    func runningPIDs(within timeout: Duration = SupervisorFixture.deadline) async throws -> [Int32] {
        try await SupervisorFixture.waitForValue("every worker to run", within: timeout) { () async throws -> [Int32]? in
            let status = try await supervisor.status()
            let pids = status.workers.compactMap { $0.state == "running" ? $0.pid : nil }
            return pids.count == status.workers.count ? remember(pids) : nil
        }
    }

    /// Waits until shard `index` runs a worker other than `oldPID`; returns the new pid.
    func replacementPID(shard index: Int, replacing oldPID: Int32, within timeout: Duration = SupervisorFixture.deadline) async throws -> Int32 {
        try await SupervisorFixture.waitForValue("shard \(index) to run a worker other than pid \(oldPID)", within: timeout) { () async throws -> Int32? in
            let worker = try await supervisor.status().workers[index]
            guard worker.state == "running", let pid = worker.pid, pid != oldPID else { return nil }
            return remember([pid])[0]
        }
    }

    private func remember(_ pids: [Int32]) -> [Int32] {
        let processes = pids.map(ProcessIdentity.init)
        seen.withLock { $0.formUnion(processes.filter { $0.startTime != nil }) }
        return pids
    }

    /// Closes the client, shuts the supervisor down (bounded) and checks that no worker it ever
    /// ran is still alive, killing any that is.
    func stop() async {
        let current = ((try? await supervisor.workerPIDs()) ?? []).compactMap { $0 }
        _ = remember(current)
        await client.close()
        let supervisor = supervisor
        let shutdown = Task<Void, any Error> { await supervisor.shutdown() }
        let stopped = await completes(shutdown, within: SupervisorFixture.deadline)
        #expect(stopped, "Supervisor.shutdown() did not return within \(SupervisorFixture.deadline)")
        let processes = seen.withLock { Array($0) }
        let survivors = await ProcessTable.waitUntilGone(processes, within: .seconds(10))
        #expect(survivors.isEmpty, "worker pids \(survivors) outlived the supervisor's shutdown (killed now)")
    }
}

// MARK: - A raw ZeroMQ client

/// A bare DEALER connected to a supervisor's frontend, for what `SupervisorClient` never sends
/// (garbage) and for exact byte counts (flow control). Its socket lives on a reactor thread of
/// its own; what arrives is queued, bounded, for `next`.
final class RawDealer: @unchecked Sendable {
    struct Message: Sendable, CustomStringConvertible {
        var frames: [[UInt8]]

        var header: WireHeader? {
            guard let first = frames.first else { return nil }
            return try? first.withUnsafeBytes { bytes throws(WireError) in try WireHeader(decoding: bytes) }
        }
        var body: [UInt8]? { frames.count > 1 ? frames[1] : nil }
        /// The code of an ERROR or ABORTED.
        var error: WireError { WireError(jsonBody: body ?? []) }

        var description: String {
            guard let header else { return "\(frames.count) frames, header \(frames.first ?? [])" }
            let detail = header.type == .error || header.type == .aborted ? " \(error)" : " body \(body?.count ?? 0) bytes"
            return "\(header.type) id \(header.id)\(detail)"
        }
    }

    private let reactor: ZMQReactor
    private let context: ZMQContext
    /// Reactor thread only.
    private var socket: ZMQSocket?
    let inbox = BoundedInbox<Message>(capacity: 100_000)

    init(endpoint: String) throws {
        context = try ZMQContext()
        let socket = try ZMQSocket(context, .dealer)
        // Unlimited queues: what the supervisor sends must arrive, so the test can count it.
        try socket.setOption(ZMQ_RCVHWM, 0)
        try socket.setOption(ZMQ_SNDHWM, 0)
        try socket.connect(endpoint)
        self.socket = socket
        reactor = try ZMQReactor(name: "raw-dealer")
        reactor.start { [self] in
            if let socket = self.socket { reactor.watch(socket) { [unowned self] in receive() } }
            reactor.onShutdown { [self] in
                self.socket?.close()
                self.socket = nil
            }
        }
    }

    private func receive() {
        for _ in 0..<1000 {
            guard let socket, let (frames, _) = try? socket.receive(maxParts: 8) else { return }
            inbox.post(Message(frames: frames.map(\.bytes)))
        }
    }

    /// Sends one multipart message of `frames`, as given.
    func send(frames: [[UInt8]]) {
        reactor.execute { [self] in
            guard let socket else { return }
            for (index, frame) in frames.enumerated() {
                socket.send(frame, more: index < frames.count - 1)
            }
        }
    }

    /// Sends many messages in one hand-over to the socket's thread, as fast as libzmq takes
    /// them (the socket has no send limit).
    func sendMany(_ messages: [[[UInt8]]]) {
        reactor.execute { [self] in
            guard let socket else { return }
            for frames in messages {
                for (index, frame) in frames.enumerated() {
                    socket.send(frame, more: index < frames.count - 1)
                }
            }
        }
    }

    func send(_ type: WireMessageType, id: UInt64, body: [UInt8]? = nil, version: UInt8 = WireVersion.current) {
        send(frames: [WireHeader(type, id: id, version: version).bytes] + (body.map { [$0] } ?? []))
    }

    /// The next message, or nil after `timeout`.
    func next(within timeout: Duration = SupervisorFixture.deadline) async -> Message? {
        await inbox.next(within: timeout)
    }

    /// The next message that is not of a `skipping` type; it must be `type` for `id`.
    func expect(
        _ type: WireMessageType, id: UInt64, skipping: Set<WireMessageType> = [],
        within timeout: Duration = SupervisorFixture.deadline
    ) async throws -> Message {
        let end = ContinuousClock.now + timeout
        for _ in 0..<100_000 {
            let remaining = end - .now
            guard remaining > .zero, let message = await next(within: remaining) else { break }
            if let header = message.header, skipping.contains(header.type) { continue }
            guard let header = message.header, header.type == type, header.id == id else {
                throw TestSupportError("expected \(type) for id \(id), got \(message)")
            }
            return message
        }
        throw TestSupportError("no \(type) for id \(id) within \(timeout)")
    }

    /// OPEN with `body` (a JSON object, as text) as request `id`; returns the stream id and
    /// send window of its OPENED, or throws with the ERROR that came instead.
    func open(id: UInt64, json: String) async throws -> (stream: UInt64, sendWindow: Int) {
        send(.open, id: id, body: Array(json.utf8))
        guard let message = await next() else { throw TestSupportError("no answer to OPEN \(id)") }
        guard let header = message.header, header.id == id, header.type == .opened, let body = message.body, body.count == 16 else {
            throw TestSupportError("OPEN \(id) was answered \(message)")
        }
        return body.withUnsafeBytes { (WireInteger.uint64($0), Int(WireInteger.uint32($0, at: 8))) }
    }

    func close() async {
        reactor.stop()
        await reactor.stopped()
        context.terminate()
    }
}

/// OPEN's JSON body for the raw client.
func openJSON(remote: ID52, address: String?, protocol: String = #"{"Generic":"echo"}"#, extra: String? = nil, timeoutMilliseconds: Int = 30_000, window: Int? = nil) -> String {
    var fields = [#""remote":"\#(remote)""#, #""protocol":\#(`protocol`)"#, #""timeout_ms":\#(timeoutMilliseconds)"#]
    if let address { fields.append(#""address":"\#(address)""#) }
    if let extra { fields.append(#""extra":"\#(extra)""#) }
    if let window { fields.append(#""window":\#(window)"#) }
    return "{" + fields.joined(separator: ",") + "}"
}

// MARK: - Streams through the supervisor

extension SupervisorClient {
    /// One echo round trip on a fresh stream to `peer`: sends `text`, finishes, returns what came
    /// back.
    func echo(_ text: String, to peer: PeerAddress, timeout: Duration? = nil) async throws -> String {
        let stream = try await getStream(ProtocolHeader(.generic("echo")), to: peer, timeout: timeout)
        try await stream.write(Array(text.utf8))
        try await stream.finish()
        return String(buffer: try await stream.readToEnd(limit: 1 << 20))
    }
}

extension SupervisedStream {
    /// Writes `text` and reads until as many bytes came back (an echo peer), leaving the stream
    /// open; bounded by the stream's own failure modes and `limit` reads.
    func echoLine(_ text: String, limit: Int = 10_000) async throws -> String {
        try await write(Array(text.utf8))
        var received = ByteBuffer()
        for _ in 0..<limit {
            guard received.readableBytes < text.utf8.count, var chunk = try await read() else { break }
            received.writeBuffer(&chunk)
        }
        return String(buffer: received)
    }
}

/// The WireError code a throwing call ended with ("succeeded" when it did not throw, the type's
/// name for other errors), and the error's message.
func outcome(_ body: () async throws -> Void) async -> (code: String, message: String) {
    do {
        try await body()
        return ("succeeded", "")
    } catch let error as WireError {
        return (error.code.rawValue, error.message)
    } catch {
        return ("\(type(of: error))", "\(error)")
    }
}

// MARK: - Waiting for tasks

/// A one-way gate tasks wait at until the test opens it. Open it in a `defer`, so no task is
/// left waiting when a test fails early.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
}

/// A counter tasks bump, that the test polls.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// The values of `tasks`, in order; throws (and cancels them) when they are not all done
/// within `timeout`.
func values<T: Sendable>(of tasks: [Task<T, Never>], within timeout: Duration, _ what: String) async throws -> [T] {
    let all = Task<[T], any Error> {
        var values: [T] = []
        for task in tasks { values.append(await task.value) }
        return values
    }
    guard await completes(all, within: timeout) else {
        for task in tasks { task.cancel() }
        throw TestSupportError("\(what) did not all finish within \(timeout)")
    }
    return try await all.value
}

/// How many times each value occurs, for readable failure messages.
func tally(_ values: [String]) -> [String: Int] {
    values.reduce(into: [:]) { $0[$1, default: 0] += 1 }
}

// MARK: - `peerpool serve` as a child

/// `peerpool serve --workers N --runtime-dir <scratch>` with a YAML file of test settings, once it
/// printed `SERVING <endpoint> <n>` and its identity. Its log (and its workers') is the end of
/// its transcript (`log`). Killed and reaped when this object goes, if still running.
final class ServeProcess: Sendable {
    let child: TestChild
    let directory: ScratchDirectory
    let endpoint: String
    let identity: ID52
    /// `http://host:port/metrics`, when started with `--metrics`.
    let metricsURL: String?

    /// `yaml` is appended to the test defaults (quick heartbeats, a 30 s connect timeout);
    /// `arguments` to the command line.
    /// `environment` nil: the test process's.
    init(workers: Int, yaml: String = "", arguments: [String] = [], environment: [String: String]? = nil) async throws {
        let directory = try ScratchDirectory()
        self.directory = directory
        let configuration = directory.file("peerpool.yaml")
        let text = """
            heartbeat_interval: 0.1
            default_request_timeout: 30
            pool:
              connect_timeout: 30
              ack_timeout: 30

            """ + yaml
        let child: TestChild
        do {
            try text.write(toFile: configuration, atomically: false, encoding: .utf8)
            var command = TestChild.Command.peerpool([
                "serve", "--workers", "\(workers)", "--runtime-dir", directory.path, "--config", configuration,
                "--log-level", SupervisorFixture.verbose ? "debug" : "warning",
            ] + arguments)
            command.environment = environment
            child = try TestChild(command)
        } catch {
            directory.remove()
            throw error
        }
        self.child = child
        let serving = try? await child.nextLine(within: SupervisorFixture.deadline)
        let identity = try? await child.nextLine(within: SupervisorFixture.deadline)
        let fields = serving?.split(separator: " ") ?? []
        guard fields.count == 3, fields[0] == "SERVING", fields[2] == "\(workers)", let identity,
              let id52 = try? ID52(parsing: identity) else {
            await child.kill()
            directory.remove()
            throw TestSupportError(
                "peerpool serve did not announce itself: \(serving ?? "nothing"), \(identity ?? "nothing"); log: \(child.transcript.suffix(2000))")
        }
        endpoint = String(fields[1])
        self.identity = id52
        if arguments.contains("--metrics") {
            let line = try? await child.nextLine(within: SupervisorFixture.deadline)
            guard let line, line.hasPrefix("METRICS http://") else {
                await child.kill()
                directory.remove()
                throw TestSupportError("peerpool serve --metrics did not announce its URL: \(line ?? "nothing")")
            }
            metricsURL = String(line.dropFirst("METRICS ".count))
        } else {
            metricsURL = nil
        }
    }

    /// What it and its workers logged so far (the end of it).
    var log: String {
        String(child.transcript.suffix(4000))
    }

    /// A client, once every worker runs; returns it with the workers' pids (see
    /// `ProcessIdentity` to check on them later).
    func connect(configuration: SupervisorClient.Configuration = .init(requestTimeout: .seconds(30))) async throws -> (SupervisorClient, [Int32]) {
        let client = try await SupervisorClient.connect(to: endpoint, configuration: configuration)
        do {
            let pids = try await SupervisorFixture.waitForValue("peerpool serve's workers to run") { () async throws -> [Int32]? in
                let status = try await client.status()
                let pids = status.workers.compactMap { $0.state == "running" ? $0.pid : nil }
                return pids.count == status.workers.count ? pids : nil
            }
            return (client, pids)
        } catch {
            await client.close()
            throw error
        }
    }

    /// Runs `body` with a started `peerpool serve` and a connected client (its workers all
    /// running), and always closes the client and kills the supervisor afterwards, awaited.
    static func with<T>(
        workers: Int, yaml: String = "", arguments: [String] = [], environment: [String: String]? = nil,
        _ body: (ServeProcess, SupervisorClient, [Int32]) async throws -> T
    ) async throws -> T {
        let serve = try await ServeProcess(workers: workers, yaml: yaml, arguments: arguments, environment: environment)
        let client: SupervisorClient, pids: [Int32]
        do {
            (client, pids) = try await serve.connect()
        } catch {
            await serve.kill()
            throw error
        }
        let result: Result<T, any Error>
        do { result = .success(try await body(serve, client, pids)) } catch { result = .failure(error) }
        await client.close()
        await serve.kill()
        return try result.get()
    }

    /// SIGKILL if still running, reap it, and remove the scratch directory.
    func kill() async {
        await child.kill()
        directory.remove()
    }

    deinit { directory.remove() }
}
