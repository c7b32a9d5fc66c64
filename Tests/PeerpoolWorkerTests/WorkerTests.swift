import CZMQ
import Foundation
import Logging
import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import PeerpoolWire
import Synchronization
import Testing

@testable import PeerpoolWorker

/// A `Worker` run in this process against a ROUTER the test binds on an ipc:// path (real
/// ZeroMQ) playing the supervisor, and a real QUIC peer in this process serving echo. Every wait
/// has a deadline; the only fixed waits check that something does *not* happen.
@Suite(.timeLimit(.minutes(3)))
struct WorkerTests {
    /// Upper bound for anything the worker is expected to do.
    static let deadline: Duration = .seconds(60)
    /// How long the test watches for a message that must not come.
    static let quietWindow: Duration = .milliseconds(300)

    // MARK: Lifecycle

    @Test func run_sendsHelloThenHeartbeats() async throws {
        try await withWorker(heartbeat: .milliseconds(50), waitForHello: false) { harness in
            let hello = try await harness.supervisor.next(within: Self.deadline)
            #expect(hello.routingID == Array("w3.7".utf8))
            #expect(hello.header.type == .hello)
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(hello.body ?? [])) as? [String: Any])
            #expect(fields["index"] as? Int == 3)
            #expect(fields["generation"] as? Int == 7)
            #expect(fields["pid"] as? Int == Int(getpid()))
            for _ in 0..<3 {
                let beat = try await harness.supervisor.next(within: Self.deadline)
                #expect(beat.header.type == .heartbeat)
                let counts = try #require(try JSONSerialization.jsonObject(with: Data(beat.body ?? [])) as? [String: Any])
                #expect(counts["connections"] as? Int == 0)
                #expect(counts["streams"] as? Int == 0)
                #expect(counts["requests"] as? Int == 0)
            }
        }
    }

    @Test func shutdown_withOpenStream_refusesOpensAbortsAfterGraceAndRunReturns() async throws {
        try await withWorker { harness in
            try await harness.openEcho(id: 1)
            harness.send(.shutdown, id: 0, body: Array(#"{"grace_ms":200}"#.utf8))
            harness.send(.open, id: 2, body: harness.echoOpenBody())
            let refused = try await harness.expect(.error, id: 2)
            #expect(WireError(jsonBody: refused.body ?? []).code == .shuttingDown)
            // The open stream does not end by itself: the grace period runs out.
            let aborted = try await harness.expect(.aborted, id: 1)
            #expect(WireError(jsonBody: aborted.body ?? []).code == .shuttingDown)
            #expect(await completes(harness.run, within: Self.deadline))
        }
    }

    @Test func shutdown_whenIdle_runReturns() async throws {
        try await withWorker { harness in
            harness.send(.shutdown, id: 0, body: Array(#"{"grace_ms":5000}"#.utf8))
            #expect(await completes(harness.run, within: Self.deadline))
        }
    }

    // MARK: Opening

    @Test func open_toEchoPeer_answersOpenedWithStreamIDAndWindow() async throws {
        try await withWorker(receiveWindow: 12_345) { harness in
            harness.send(.open, id: 0x0102_0304_0506_0708, body: harness.echoOpenBody())
            let opened = try await harness.expect(.opened, id: 0x0102_0304_0506_0708)
            let body = try #require(opened.body)
            #expect(body.count == 16)
            body.withUnsafeBytes { bytes in
                #expect(WireInteger.uint64(bytes) == 0x0102_0304_0506_0708)
                #expect(WireInteger.uint32(bytes, at: 8) == 12_345)
                #expect(WireInteger.uint32(bytes, at: 12) == 0)
            }
        }
    }

    @Test func open_badBody_answersBadRequest() async throws {
        try await withWorker { harness in
            harness.send(.open, id: 5, body: Array("not json".utf8))
            let code5 = try await harness.code(.error, id: 5)
            #expect(code5 == .badRequest)
            harness.send(.open, id: 6, body: Array(#"{"remote":"nope","protocol":"Ping"}"#.utf8))
            let code6 = try await harness.code(.error, id: 6)
            #expect(code6 == .badID52)
            harness.send(.open, id: 7)
            let code7 = try await harness.code(.error, id: 7)
            #expect(code7 == .malformedFrame)
        }
    }

    @Test func open_toSilentAddress_answersConnectFailedWithinConnectTimeout() async throws {
        let silent = try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup).bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        try await withWorker(connectTimeout: .milliseconds(500)) { harness in
            let start = ContinuousClock.now
            harness.send(.open, id: 9, body: harness.openBody(remote: SecretKey.generate().id52, address: silent.localAddress!, timeoutMilliseconds: 20_000))
            let error = try await harness.expect(.error, id: 9)
            #expect(WireError(jsonBody: error.body ?? []).code == "connect_failed")
            #expect(ContinuousClock.now - start < .seconds(8))
        }
    }

    /// A connect timeout longer than QUIC's default 10 s handshake limit is the one that holds:
    /// the open fails with `connect_failed` naming the connect, not at 10 s with the handshake's.
    @Test func open_toSilentAddress_withAConnectTimeoutAbove10s_waitsForIt() async throws {
        let silent = try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup).bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        try await withWorker(connectTimeout: .seconds(12)) { harness in
            let start = ContinuousClock.now
            harness.send(.open, id: 9, body: harness.openBody(remote: SecretKey.generate().id52, address: silent.localAddress!, timeoutMilliseconds: 60_000))
            let error = WireError(jsonBody: try await harness.expect(.error, id: 9).body ?? [])
            #expect(error.code == "connect_failed")
            #expect(!error.message.contains("handshake_timeout"), "\(error.message)")
            #expect(ContinuousClock.now - start >= .seconds(12))
        }
    }

    @Test func open_pastItsTimeout_answersTimeout() async throws {
        let silent = try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup).bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        try await withWorker(connectTimeout: .seconds(30)) { harness in
            harness.send(.open, id: 9, body: harness.openBody(remote: SecretKey.generate().id52, address: silent.localAddress!, timeoutMilliseconds: 300))
            let code9 = try await harness.code(.error, id: 9)
            #expect(code9 == .timeout)
        }
    }

    @Test func cancel_pendingOpen_answersCancelled() async throws {
        let silent = try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup).bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        try await withWorker(connectTimeout: .seconds(30)) { harness in
            harness.send(.open, id: 11, body: harness.openBody(remote: SecretKey.generate().id52, address: silent.localAddress!, timeoutMilliseconds: 30_000))
            harness.send(.cancel, id: 11)
            let code11 = try await harness.code(.error, id: 11)
            #expect(code11 == .cancelled)
            // Exactly one answer: nothing more about request 11.
            #expect(try await harness.nextNonHeartbeat(within: Self.quietWindow) == nil)
        }
    }

    // MARK: Streams

    @Test func data_echoedBackWithCredit_finishBothWaysForgetsStream() async throws {
        try await withWorker(receiveWindow: 65_536) { harness in
            try await harness.openEcho(id: 1)
            let payload = Array("hello, peer".utf8)
            harness.send(.data, id: 1, body: payload)
            var echoed: [UInt8] = []
            var credited = 0
            while echoed.count < payload.count || credited < payload.count {
                let message = try await harness.nextStreamMessage(id: 1)
                switch message.header.type {
                case .data: echoed += message.body ?? []
                case .credit: credited += Int(message.body!.withUnsafeBytes { WireInteger.uint32($0) })
                default: Issue.record("unexpected \(message.header.type)"); return
                }
            }
            #expect(echoed == payload)
            #expect(credited == payload.count)
            harness.send(.finish, id: 1)
            _ = try await harness.expect(.finish, id: 1)
            // Both sides finished: the id is unknown now.
            harness.send(.data, id: 1, body: [1])
            let code1 = try await harness.code(.aborted, id: 1)
            #expect(code1 == .unknownStream)
        }
    }

    @Test func data_largerThanAFrame_arrivesWhole() async throws {
        try await withWorker(receiveWindow: 4 << 20) { harness in
            try await harness.openEcho(id: 1, window: 8 << 20)
            let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for offset in stride(from: 0, to: payload.count, by: 1 << 20) {
                harness.send(.data, id: 1, body: Array(payload[offset..<min(offset + (1 << 20), payload.count)]))
            }
            harness.send(.finish, id: 1)
            var echoed: [UInt8] = []
            while true {
                let message = try await harness.nextStreamMessage(id: 1)
                if message.header.type == .finish { break }
                if message.header.type == .data {
                    #expect((message.body?.count ?? 0) <= 256 * 1024)
                    echoed += message.body ?? []
                }
            }
            #expect(echoed == payload)
        }
    }

    @Test func credit_window1000_workerSendsAtMost1000BytesUntilCredit() async throws {
        try await withWorker(receiveWindow: 65_536) { harness in
            try await harness.openEcho(id: 1, window: 1000)
            let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
            harness.send(.data, id: 1, body: payload)
            var echoed: [UInt8] = []
            for allowed in [1000, 2000, 3000] {
                while echoed.count < allowed {
                    let message = try await harness.nextStreamMessage(id: 1)
                    if message.header.type == .data { echoed += message.body ?? [] }
                    #expect(echoed.count <= allowed, "the worker sent beyond the client's credit")
                }
                // The credit is used up: nothing more comes until we return some.
                while let message = try await harness.nextNonHeartbeat(within: Self.quietWindow) {
                    #expect(message.header.type != .data, "DATA beyond the client's credit")
                }
                harness.send(.credit, id: 1, body: WireInteger.bytes(UInt32(1000)))
            }
            #expect(echoed == payload)
            harness.send(.finish, id: 1)
            _ = try await harness.expect(.finish, id: 1)
        }
    }

    @Test func data_beyondGrantedWindow_abortsWithFlowControlViolation() async throws {
        try await withWorker(receiveWindow: 4096) { harness in
            try await harness.openEcho(id: 1)
            harness.send(.data, id: 1, body: [UInt8](repeating: 7, count: 5000))
            let aborted = try await harness.expect(.aborted, id: 1)
            #expect(WireError(jsonBody: aborted.body ?? []).code == .flowControlViolation)
            harness.send(.data, id: 1, body: [1])
            let code1 = try await harness.code(.aborted, id: 1)
            #expect(code1 == .unknownStream)
        }
    }

    @Test func reset_fromSupervisor_forgetsStreamWithoutAnswer() async throws {
        try await withWorker { harness in
            try await harness.openEcho(id: 1)
            harness.send(.reset, id: 1, body: WireInteger.bytes(UInt64(42)))
            harness.send(.finish, id: 1)
            let code1 = try await harness.code(.aborted, id: 1)
            #expect(code1 == .unknownStream)
        }
    }

    /// The worker checks a RESET code itself before it reaches ngtcp2, which aborts the process
    /// on a code over 2^62-1 (the supervisor refuses such codes first).
    @Test func reset_withCodeOver62Bits_abortsMalformedFrame_andTheWorkerServesOn() async throws {
        try await withWorker { harness in
            try await harness.openEcho(id: 1)
            harness.send(.reset, id: 1, body: WireInteger.bytes(UInt64(1) << 62))
            let code1 = try await harness.code(.aborted, id: 1)
            #expect(code1 == .malformedFrame)
            try await harness.openEcho(id: 2)
        }
    }

    /// CREDIT returns bytes consumed: credit above the stream's window is refused.
    @Test func credit_beyondTheWindow_abortsWithFlowControlViolation() async throws {
        try await withWorker { harness in
            try await harness.openEcho(id: 1)
            harness.send(.credit, id: 1, body: WireInteger.bytes(UInt32(1)))
            let code1 = try await harness.code(.aborted, id: 1)
            #expect(code1 == .flowControlViolation)
        }
    }

    @Test func peerReset_abortsWithStreamReset() async throws {
        try await withWorker { harness in
            harness.send(.open, id: 1, body: harness.openBody(remote: harness.peer.id52, address: harness.peer.address, protocol: WorkerTests.resetProtocol))
            _ = try await harness.expect(.opened, id: 1)
            // The peer resets once it has read something (not before: a reset right after `ack`
            // could drop the ack itself).
            harness.send(.data, id: 1, body: [1])
            while true {
                let message = try await harness.nextStreamMessage(id: 1)
                if message.header.type == .credit { continue }
                #expect(message.header.type == .aborted)
                #expect(WireError(jsonBody: message.body ?? []).code == .streamReset)
                break
            }
        }
    }

    @Test func unknownStream_dataFinishResetAborted_creditIgnored() async throws {
        try await withWorker { harness in
            harness.send(.credit, id: 77, body: WireInteger.bytes(UInt32(10)))
            harness.send(.data, id: 77, body: [1, 2, 3])
            let code77 = try await harness.code(.aborted, id: 77)
            #expect(code77 == .unknownStream)
            harness.send(.finish, id: 78)
            let code78 = try await harness.code(.aborted, id: 78)
            #expect(code78 == .unknownStream)
            harness.send(.reset, id: 79, body: WireInteger.bytes(UInt64(0)))
            let code79 = try await harness.code(.aborted, id: 79)
            #expect(code79 == .unknownStream)
            #expect(try await harness.nextNonHeartbeat(within: Self.quietWindow) == nil)
        }
    }

    // MARK: Harness

    static let echoProtocol = StreamProtocol.generic(.string("echo"))
    /// The test peer resets (and stops) such a stream after its first read.
    static let resetProtocol = StreamProtocol.generic(.string("reset"))

    /// Starts a peer, a fake supervisor and a worker; runs `body`; stops them all, whatever
    /// `body` did.
    private func withWorker(
        receiveWindow: Int = 65_536, heartbeat: Duration = .milliseconds(200), connectTimeout: Duration = .seconds(15),
        waitForHello: Bool = true, _ body: (WorkerHarness) async throws -> Void
    ) async throws {
        let peer = try await WorkerTestPeer.start()
        let directory = try makePrivateDirectory(prefix: "peerpool-worker-test")
        defer { try? FileManager.default.removeItem(at: directory) }
        let supervisor = try await WorkerTestSupervisor.start(endpoint: "ipc://\(directory.path)/workers.sock")
        var pool = PoolConfiguration()
        pool.connectTimeout = connectTimeout
        pool.ackTimeout = .seconds(15)
        let settings = WorkerSettings(
            index: 3, generation: 7, backendEndpoint: supervisor.endpoint, supervisorPID: getpid(),
            heartbeatInterval: heartbeat, secretKeys: [SecretKey.generate()], receiveWindow: receiveWindow,
            addressBook: nil, pool: pool)
        let worker = try Worker(settings: settings, logger: Logger(label: "peerpool.worker.test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let run = Task { try await worker.run() }
        let harness = WorkerHarness(supervisor: supervisor, worker: worker, run: run, peer: peer, routingID: Array(settings.routingID.utf8))
        var failure: (any Error)?
        do {
            // Like the real supervisor: the ROUTER can route to the worker once it said HELLO.
            if waitForHello { try await harness.expect(.hello, id: 0) }
            try await body(harness)
        } catch {
            failure = error
        }
        worker.stop(gracePeriod: .zero)
        let stopped = await completes(run, within: Self.deadline)
        #expect(stopped, "Worker.run() did not return after stop")
        if stopped {
            do { try await run.value } catch { Issue.record("Worker.run() threw \(error)") }
        }
        await supervisor.stop()
        await peer.stop()
        if let failure { throw failure }
    }
}

/// What a test holds: the fake supervisor, the worker's run task and the peer.
private struct WorkerHarness {
    let supervisor: WorkerTestSupervisor
    let worker: Worker
    let run: Task<Void, any Error>
    let peer: WorkerTestPeer
    let routingID: [UInt8]

    func send(_ type: WireMessageType, id: UInt64, body: [UInt8]? = nil) {
        supervisor.send(to: routingID, WireHeader(type, id: id), body: body)
    }

    func openBody(
        remote: ID52, address: SocketAddress, protocol: StreamProtocol = WorkerTests.echoProtocol,
        timeoutMilliseconds: Int = 10_000, window: Int? = nil
    ) -> [UInt8] {
        let request = OpenRequest(
            remote: remote, address: "\(address.ipAddress!):\(address.port!)", header: ProtocolHeader(`protocol`),
            timeout: .milliseconds(timeoutMilliseconds), window: window)
        return request.encoded()
    }

    func echoOpenBody(window: Int? = nil) -> [UInt8] {
        openBody(remote: peer.id52, address: peer.address, window: window)
    }

    /// OPEN to the echo peer, and its OPENED.
    func openEcho(id: UInt64, window: Int? = nil) async throws {
        send(.open, id: id, body: echoOpenBody(window: window))
        _ = try await expect(.opened, id: id)
    }

    /// The next message that is not HELLO or HEARTBEAT, or nil if none comes within `timeout`.
    func nextNonHeartbeat(within timeout: Duration) async throws -> WorkerTestSupervisor.Message? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - .now
            guard remaining > .zero, let message = await supervisor.next(orNilWithin: remaining) else { return nil }
            if message.header.type != .heartbeat && message.header.type != .hello { return message }
        }
    }

    /// The next message that is not HELLO or HEARTBEAT; it must be `type` for `id`.
    @discardableResult
    func expect(_ type: WireMessageType, id: UInt64) async throws -> WorkerTestSupervisor.Message {
        if type == .hello {
            while true {
                let message = try await supervisor.next(within: WorkerTests.deadline)
                if message.header.type == .hello { return message }
            }
        }
        guard let message = try await nextNonHeartbeat(within: WorkerTests.deadline) else {
            throw TestSupportError("no \(type) for \(id) within \(WorkerTests.deadline)")
        }
        guard message.header.type == type, message.header.id == id else {
            throw TestSupportError("expected \(type) for \(id), got \(message.header.type) for \(message.header.id): \(String(decoding: message.body ?? [], as: UTF8.self))")
        }
        return message
    }

    /// The code of the next message, which must be an ERROR or ABORTED (`type`) for `id`.
    func code(_ type: WireMessageType, id: UInt64) async throws -> WireError.Code {
        WireError(jsonBody: try await expect(type, id: id).body ?? []).code
    }

    /// The next message about stream `id` (DATA, CREDIT, FINISH, ...).
    func nextStreamMessage(id: UInt64) async throws -> WorkerTestSupervisor.Message {
        guard let message = try await nextNonHeartbeat(within: WorkerTests.deadline) else {
            throw TestSupportError("nothing about stream \(id) within \(WorkerTests.deadline)")
        }
        guard message.header.id == id else {
            throw TestSupportError("expected a message for stream \(id), got \(message.header.type) for \(message.header.id)")
        }
        return message
    }
}

/// The supervisor's side of the backend: a ROUTER on its own reactor thread; what arrives is
/// queued for `next`.
private final class WorkerTestSupervisor: @unchecked Sendable {
    struct Message: Sendable, Equatable {
        var routingID: [UInt8]
        var header: WireHeader
        var body: [UInt8]?
    }

    private struct Inbox {
        var messages: [Message] = []
        var waiter: CheckedContinuation<Message?, Never>?
    }

    let endpoint: String
    private let context: ZMQContext
    private let reactor: ZMQReactor
    private let inbox = Mutex(Inbox())
    /// Reactor thread only.
    private var socket: ZMQSocket?

    private init(endpoint: String) throws {
        self.endpoint = endpoint
        context = try ZMQContext()
        reactor = try ZMQReactor(name: "worker-test-supervisor")
    }

    static func start(endpoint: String) async throws -> WorkerTestSupervisor {
        let supervisor = try WorkerTestSupervisor(endpoint: endpoint)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            supervisor.reactor.start {
                do {
                    try supervisor.bind()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        return supervisor
    }

    private func bind() throws {
        let socket = try ZMQSocket(context, .router)
        try socket.setOption(ZMQ_ROUTER_MANDATORY, 1)
        try socket.setOption(ZMQ_SNDHWM, 0)
        try socket.setOption(ZMQ_RCVHWM, 0)
        try socket.bind(endpoint)
        self.socket = socket
        reactor.watch(socket) { [unowned self] in read() }
        reactor.onShutdown { socket.close() }
    }

    private func read() {
        guard let socket else { return }
        while let (frames, _) = try? socket.receive(maxParts: 3) {
            guard frames.count >= 2,
                let header = try? frames[1].withUnsafeBytes({ bytes throws(WireError) in try WireHeader(decoding: bytes) })
            else { continue }
            deliver(Message(routingID: frames[0].bytes, header: header, body: frames.count > 2 ? frames[2].bytes : nil))
        }
    }

    private func deliver(_ message: Message) {
        let waiter = inbox.withLock { inbox -> CheckedContinuation<Message?, Never>? in
            if let waiter = inbox.waiter {
                inbox.waiter = nil
                return waiter
            }
            inbox.messages.append(message)
            return nil
        }
        waiter?.resume(returning: message)
    }

    func send(to routingID: [UInt8], _ header: WireHeader, body: [UInt8]?) {
        reactor.execute { [self] in
            guard let socket else { return }
            // A failed send shows up as a missing answer, within the test's deadline.
            guard socket.send(routingID, more: true) == .sent, socket.send(header, more: body != nil) == .sent else { return }
            if let body { socket.send(body, more: false) }
        }
    }

    /// The next message; throws if none comes within `timeout`.
    func next(within timeout: Duration) async throws -> Message {
        guard let message = await next(orNilWithin: timeout) else {
            throw TestSupportError("no message from the worker within \(timeout)")
        }
        return message
    }

    func next(orNilWithin timeout: Duration) async -> Message? {
        await withTaskGroup(of: Message?.self) { group in
            group.addTask { await self.take() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            // A message taken just as the timeout won goes back to the front, not lost.
            for await late in group {
                if let late { inbox.withLock { $0.messages.insert(late, at: 0) } }
            }
            return first
        }
    }

    private func take() async -> Message? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Message?, Never>) in
                let ready = inbox.withLock { inbox -> Message?? in
                    if !inbox.messages.isEmpty { return .some(inbox.messages.removeFirst()) }
                    if Task.isCancelled { return .some(nil) }
                    inbox.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = inbox.withLock { inbox in
                defer { inbox.waiter = nil }
                return inbox.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    func stop() async {
        reactor.stop()
        await reactor.stopped()
        context.terminate()
    }
}

/// A QUIC peer in this process serving `{"Generic":"echo"}` (and `"reset"`, which resets the
/// stream once it has read something).
private final class WorkerTestPeer: Sendable {
    let endpoint: QUICEndpoint
    let id52: ID52
    private let task: Task<Void, any Error>

    private init(endpoint: QUICEndpoint, id52: ID52, task: Task<Void, any Error>) {
        self.endpoint = endpoint
        self.id52 = id52
        self.task = task
    }

    static func start() async throws -> WorkerTestPeer {
        let key = SecretKey.generate()
        var quic = QUICConfiguration()
        quic.handshakeTimeout = .seconds(15)
        quic.idleTimeout = .seconds(15)
        let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], configuration: quic)
        let acceptor = StreamAcceptor(
            endpoint: endpoint, configuration: AcceptorConfiguration(protocols: [WorkerTests.echoProtocol, WorkerTests.resetProtocol])
        ) { incoming in
            let stream = incoming.stream
            if incoming.header.protocol == WorkerTests.resetProtocol {
                _ = try? await stream.read()
                await stream.reset(code: 7)
                await stream.stopSending(code: 7)
                return
            }
            do {
                while let chunk = try await stream.read() { try await stream.write(chunk) }
                try await stream.finish()
            } catch {}
        }
        return WorkerTestPeer(endpoint: endpoint, id52: key.id52, task: Task { try await acceptor.run() })
    }

    var address: SocketAddress { endpoint.localAddress }

    func stop() async {
        task.cancel()
        await endpoint.close()
    }
}
