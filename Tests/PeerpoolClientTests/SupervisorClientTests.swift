import Foundation
import NIOCore
import PeerpoolClient
import PeerpoolIdentity
import PeerpoolProtocol
import PeerpoolTestSupport
import PeerpoolWire
import Synchronization
import Testing

/// `SupervisorClient` against a scripted supervisor: a real ZeroMQ ROUTER the test drives frame
/// by frame (`ScriptedSupervisor`), so every message the client sends is seen as the real
/// supervisor would see it.
///
/// "Nothing more was sent" is proven with a barrier, not a sleep: the client's calls run in
/// order on its one reactor thread and its DEALER delivers in order, so when the next message
/// the ROUTER sees is the STATUS of a `status()` issued afterwards, nothing came before it.
@Suite(.timeLimit(.minutes(3)))
struct SupervisorClientTests {
    static let peer = SecretKey.generate().id52

    @Test func connect_whenNothingListens_throwsSupervisorLostWithinConnectTimeout() async throws {
        let directory = try makePrivateDirectory(prefix: "peerpool-client")
        defer { try? FileManager.default.removeItem(at: directory) }
        let endpoint = "ipc://\(directory.path)/frontend.sock"
        let start = ContinuousClock.now
        let error = await #expect(throws: WireError.self) {
            _ = try await SupervisorClient.connect(to: endpoint, configuration: .init(connectTimeout: .milliseconds(300)))
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.code == .supervisorLost)
        #expect(error?.message.contains(endpoint) == true)
        #expect(error?.message.contains("within 0.3 s; is `peerpool serve` running?") == true)
        // Never before the connect timeout; the upper bound only says it does not hang (a full
        // parallel suite on 2 cores has delayed this answer by 14 s: timing goals are benchmarks').
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(45))
    }

    /// libzmq refuses the endpoint on the reactor thread that opens the sockets; the error still
    /// reaches the caller (the start's continuation is resumed on that path too, or this hangs
    /// to the suite's time limit), every time.
    @Test(arguments: ["nonsense", "tcp://", "ipc://"])
    func connect_toAnEndpointLibzmqRefuses_throwsItsError(_ endpoint: String) async throws {
        for _ in 0..<20 {
            await #expect(throws: ZMQError.self) { _ = try await SupervisorClient.connect(to: endpoint) }
        }
    }

    @Test func getStream_sendsOpenBody_andThrowsTheSupervisorsError() async throws {
        try await withClient(.init(receiveWindow: 12_345)) { supervisor, client in
            let local = SecretKey.generate().id52
            let peer = PeerAddress(Self.peer, at: try SocketAddress(ipAddress: "::1", port: 4433))
            let opening = Task { try await client.getStream(ProtocolHeader(.ping), to: peer, from: local, timeout: .milliseconds(1500)) }
            let open = try await supervisor.expect(.open)
            #expect(open.header.id != 0)
            let json = open.bodyJSON
            #expect(json["remote"] as? String == Self.peer.description)
            #expect(json["address"] as? String == "[::1]:4433")
            #expect(json["self"] as? String == local.description)
            #expect(json["protocol"] as? String == "Ping")
            #expect(json["timeout_ms"] as? Int == 1500)
            #expect(json["window"] as? Int == 12_345)
            #expect(json["extra"] == nil)
            // The supervisor's own decoder accepts it.
            let decoded = try OpenRequest(jsonBody: open.body ?? [])
            #expect(decoded == OpenRequest(remote: Self.peer, address: "[::1]:4433", local: local, header: ProtocolHeader(.ping), timeout: .milliseconds(1500), window: 12_345))

            supervisor.sendError(id: open.header.id, code: "worker_crashed", message: "shard 3's worker died of SIGKILL")
            let error = await #expect(throws: WireError.self) { _ = try await opening.value }
            #expect(error?.code == .workerCrashed)
            #expect(error?.message == "shard 3's worker died of SIGKILL")

            // IPv4, a Generic protocol with an extra line, the configured default timeout.
            let generic = ProtocolHeader(.generic(try JSONValue(parsing: #"{"app":"chat"}"#)), extra: "room 7")
            let second = Task {
                try await client.getStream(generic, to: PeerAddress(Self.peer, at: try SocketAddress(ipAddress: "127.0.0.1", port: 9000)))
            }
            let open2 = try await supervisor.expect(.open)
            #expect(open2.header.id != open.header.id)
            let json2 = open2.bodyJSON
            #expect(json2["address"] as? String == "127.0.0.1:9000")
            #expect(json2["self"] == nil)
            #expect((json2["protocol"] as? [String: Any])?["Generic"] as? [String: String] == ["app": "chat"])
            #expect(json2["extra"] as? String == "room 7")
            #expect(json2["timeout_ms"] as? Int == 10_000)
            supervisor.sendError(id: open2.header.id, code: "no_address", message: "no address for the peer")
            await #expect(throws: WireError(.init(rawValue: "no_address"), "")) { _ = try await second.value }
        }
    }

    @Test func stream_readsDataThenNilAfterFinish_andWritesDataAndFinish() async throws {
        try await withClient { supervisor, client in
            let opening = Task { try await client.getStream(ProtocolHeader(.http), to: PeerAddress(Self.peer)) }
            let open = try await supervisor.expect(.open)
            #expect(open.bodyJSON["address"] == nil)
            supervisor.sendOpened(id: open.header.id, stream: 77, sendWindow: 65_536)
            let stream = try await opening.value
            #expect(stream.id == 77)
            #expect(stream.remoteID52 == Self.peer)
            #expect(stream.header == ProtocolHeader(.http))

            supervisor.send(.data, id: 77, body: Array("hello".utf8))
            #expect(try await stream.read().map { String(buffer: $0) } == "hello")

            try await stream.write(Array("GET / HTTP/1.1\r\n\r\n".utf8))
            let data = try await supervisor.expect(.data, skipping: [.credit])
            #expect(data.header.id == 77)
            #expect(data.bodyText == "GET / HTTP/1.1\r\n\r\n")
            try await stream.finish()
            #expect(try await supervisor.expect(.finish).header.id == 77)
            await #expect(throws: WireError(.streamClosed, "")) { try await stream.write(Array("late".utf8)) }

            // A reader waiting when DATA and FINISH arrive.
            let reading = Task { try await stream.readToEnd(limit: 100) }
            supervisor.send(.data, id: 77, body: Array("world".utf8))
            supervisor.send(.finish, id: 77)
            #expect(String(buffer: try await reading.value) == "world")
            #expect(try await stream.read() == nil)
            // Both sides finished: the stream is over, and dropping it sends no RESET.
            _ = consume stream
            try await barrier(supervisor, client, skipping: [.credit])
        }
    }

    @Test func write_beyondSendWindow_suspendsUntilCredit() async throws {
        try await withClient(.init(maxDataFrame: 400)) { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 5, sendWindow: 1000)
            let payload = (0..<2500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let writing = Task { try await stream.write(payload) }

            var received: [UInt8] = []
            func take(_ bytes: Int) async throws {
                let target = received.count + bytes
                while received.count < target {
                    let data = try await supervisor.expect(.data)
                    #expect(data.header.id == 5)
                    #expect((1...400).contains(data.body?.count ?? 0))
                    received += data.body ?? []
                }
                #expect(received.count == target)
            }
            try await take(1000)
            // The window is used up: the next thing the client sends is the barrier's STATUS.
            try await barrier(supervisor, client)
            supervisor.send(.credit, id: 5, body: WireInteger.bytes(UInt32(1000)))
            try await take(1000)
            try await barrier(supervisor, client)
            supervisor.send(.credit, id: 5, body: WireInteger.bytes(UInt32(4000)))
            try await take(500)
            try await writing.value
            #expect(received == payload)
            try await stream.finish()
            _ = try await supervisor.expect(.finish)
        }
    }

    @Test func read_returnsCreditInBatchesAsTheApplicationConsumes() async throws {
        // Window 4000: CREDIT once 1000 consumed bytes are owed, or when a read empties the queue.
        try await withClient(.init(receiveWindow: 4000)) { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 9, sendWindow: 100)
            // Queue three DATA frames at the client before anything reads: they arrive before
            // the STATUS_REPLY sent after them.
            let statusing = Task { try await client.status() }
            let status = try await supervisor.expect(.status)
            for _ in 0..<3 { supervisor.send(.data, id: 9, body: [UInt8](repeating: 1, count: 600)) }
            supervisor.send(.statusReply, id: status.header.id, body: Array(ScriptedSupervisor.statusJSON.utf8))
            _ = try await statusing.value

            #expect(try await stream.read()?.readableBytes == 600)
            try await barrier(supervisor, client)  // 600 owed: no CREDIT yet
            #expect(try await stream.read()?.readableBytes == 600)
            let credit = try await supervisor.expect(.credit)
            #expect(credit.header.id == 9)
            #expect(credit.bodyUInt32 == 1200)
            #expect(try await stream.read()?.readableBytes == 600)
            #expect(try await supervisor.expect(.credit).bodyUInt32 == 600)  // the queue emptied

            // A whole window's worth, consumed: every byte is credited back.
            let reading = Task { try await stream.readToEnd(limit: 10_000) }
            var sent = 0
            for size in [1000, 1000, 1000, 999, 1] {
                supervisor.send(.data, id: 9, body: [UInt8](repeating: 2, count: size))
                sent += size
            }
            var credited = 0
            while credited < sent {
                credited += Int(try await supervisor.expect(.credit).bodyUInt32 ?? 0)
            }
            #expect(credited == sent)
            supervisor.send(.finish, id: 9)
            #expect(try await reading.value.readableBytes == sent)
            await stream.reset(code: 0)
            _ = try await supervisor.expect(.reset)
        }
    }

    @Test func read_whenSupervisorOverrunsTheWindow_resetsTheStream() async throws {
        try await withClient(.init(receiveWindow: 1000)) { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 11, sendWindow: 100)
            supervisor.send(.data, id: 11, body: [UInt8](repeating: 1, count: 600))
            supervisor.send(.data, id: 11, body: [UInt8](repeating: 1, count: 600))
            let reset = try await supervisor.expect(.reset)
            #expect(reset.header.id == 11)
            #expect(reset.bodyUInt64 == 0)
            await #expect(throws: WireError(.protocolViolation, "")) { _ = try await stream.read() }
        }
    }

    @Test func aborted_failsReadAndWriteWithTheCode() async throws {
        try await withClient { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 3, sendWindow: 10)
            let reading = Task { try await stream.read() }
            let writing = Task { try await stream.write([UInt8](repeating: 0, count: 50)) }
            // The writer sent its 10 bytes of credit and waits for more.
            #expect(try await supervisor.expect(.data).body?.count == 10)
            supervisor.sendError(.aborted, id: 3, code: "worker_crashed", message: "shard 0's worker exited with status 1")
            let readError = await #expect(throws: WireError.self) { _ = try await reading.value }
            #expect(readError?.code == .workerCrashed)
            #expect(readError?.message == "shard 0's worker exited with status 1")
            await #expect(throws: WireError(.workerCrashed, "")) { try await writing.value }
            await #expect(throws: WireError(.workerCrashed, "")) { _ = try await stream.read() }
            await #expect(throws: WireError(.workerCrashed, "")) { try await stream.finish() }
            // Aborted is over: no RESET when it is dropped.
            _ = consume stream
            try await barrier(supervisor, client)
        }
    }

    @Test func getStream_whenCancelled_sendsCancel_andResetsALateOpened() async throws {
        try await withClient { supervisor, client in
            let opening = Task { try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(Self.peer)) }
            let open = try await supervisor.expect(.open)
            opening.cancel()
            let cancel = try await supervisor.expect(.cancel)
            #expect(cancel.header.id == open.header.id)
            #expect(cancel.body == nil)
            await #expect(throws: CancellationError.self) { _ = try await opening.value }

            // The supervisor's answer crossed the CANCEL: the stream nobody wants is reset.
            supervisor.sendOpened(id: open.header.id, stream: 42, sendWindow: 100)
            let reset = try await supervisor.expect(.reset)
            #expect(reset.header.id == 42)
            #expect(reset.bodyUInt64 == 0)
            supervisor.sendError(id: open.header.id, code: "cancelled", message: "cancelled by the client")
            try await barrier(supervisor, client)

            // Cancelled before it started: nothing is sent at all.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(Self.peer))
            }
            await #expect(throws: CancellationError.self) { _ = try await early.value }
            try await barrier(supervisor, client)
        }
    }

    @Test func getStream_whenNoAnswerArrives_failsLocallyWithTimeout() async throws {
        try await withClient(.init(requestTimeout: .milliseconds(200), answerSlack: .milliseconds(100))) { supervisor, client in
            let start = ContinuousClock.now
            let opening = Task { try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(Self.peer)) }
            let open = try await supervisor.expect(.open)
            #expect(open.bodyJSON["timeout_ms"] as? Int == 200)
            let error = await #expect(throws: WireError.self) { _ = try await opening.value }
            let elapsed = ContinuousClock.now - start
            #expect(error?.code == .timeout)
            // Never before the request timeout plus slack; the upper bound only says it does not
            // hang (a loaded full run delays such answers by seconds: timing goals are benchmarks').
            #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(45))
            // The client withdraws the request, so a supervisor that wakes up forgets it.
            #expect(try await supervisor.expect(.cancel).header.id == open.header.id)
        }
    }

    @Test func supervisorClosingItsSocket_failsPendingAndOpenWithSupervisorLost_thenReconnects() async throws {
        try await withClient { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 1, sendWindow: 100)
            let reading = Task { try await stream.read() }
            let opening = Task { try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(Self.peer)) }
            _ = try await supervisor.expect(.open)
            let start = ContinuousClock.now
            await supervisor.closeSocket()
            await #expect(throws: WireError(.supervisorLost, "")) { _ = try await opening.value }
            // Well before the request's 10 s timeout.
            #expect(ContinuousClock.now - start < .seconds(3))
            await #expect(throws: WireError(.supervisorLost, "")) { _ = try await reading.value }
            await #expect(throws: WireError(.supervisorLost, "")) { try await stream.write([1, 2, 3]) }

            // A new supervisor on the same endpoint: libzmq reconnects, requests work again.
            let successor = try ScriptedSupervisor(directory: supervisor.directory)
            do {
                let statusing = Task { try await client.status() }
                try await successor.answerStatus(within: .seconds(10))
                #expect(try await statusing.value.workers.count == 2)
            } catch {
                await successor.shutDown(removeDirectory: false)
                throw error
            }
            await successor.shutDown(removeDirectory: false)
        }
    }

    @Test func status_decodesTheReply_andTheStatusRoundTrips() async throws {
        try await withClient { supervisor, client in
            let statusing = Task { try await client.status() }
            try await supervisor.answerStatus()
            let status = try await statusing.value
            #expect(status.version == 1)
            #expect(status.pid == 1234)
            #expect(status.uptimeSeconds == 12.5)
            #expect(status.streams == 3)
            #expect(status.workers.count == 2)
            #expect(status.workers[0] == .init(index: 0, pid: 1240, state: "running", uptimeSeconds: 12.4, restarts: 0, connections: 2, streams: 3, requests: 0))
            #expect(status.workers[1].pid == nil)
            #expect(status.workers[1].uptimeSeconds == nil)
            #expect(status.workers[1].state == "backoff")

            let encoded = try JSONEncoder().encode(status)
            #expect(try JSONDecoder().decode(SupervisorStatus.self, from: encoded) == status)
            let object = try JSONSerialization.jsonObject(with: encoded) as? [String: Any]
            #expect(Set(object?.keys.map { $0 } ?? []) == ["version", "pid", "uptime_s", "clients", "streams", "requests", "workers"])
            let worker = (object?["workers"] as? [[String: Any]])?[1]
            #expect(Set(worker?.keys.map { $0 } ?? []) == ["index", "pid", "state", "uptime_s", "restarts", "connections", "streams", "requests"])
            #expect(worker?["pid"] is NSNull)

            // A reply that is not the status JSON.
            let broken = Task { try await client.status() }
            let request = try await supervisor.expect(.status)
            supervisor.send(.statusReply, id: request.header.id, body: Array("{}".utf8))
            await #expect(throws: WireError(.protocolViolation, "")) { _ = try await broken.value }
        }
    }

    @Test func droppingOrResettingAStream_sendsReset() async throws {
        try await withClient { supervisor, client in
            do {
                let stream = try await openStream(supervisor, client, id: 20, sendWindow: 100)
                try await stream.finish()
                _ = try await supervisor.expect(.finish)
            }
            // Dropped with the peer's side still open: RESET 0, like closing a socket.
            let reset = try await supervisor.expect(.reset)
            #expect(reset.header.id == 20)
            #expect(reset.bodyUInt64 == 0)

            let stream = try await openStream(supervisor, client, id: 21, sendWindow: 100)
            let reading = Task { try await stream.read() }
            await stream.reset(code: 0x1_0000_0001)
            let explicit = try await supervisor.expect(.reset)
            #expect(explicit.header.id == 21)
            #expect(explicit.bodyUInt64 == 0x1_0000_0001)
            await #expect(throws: WireError(.streamClosed, "")) { _ = try await reading.value }
            await stream.reset(code: 5)  // already over: nothing more is sent
            try await barrier(supervisor, client)
        }
    }

    @Test func readToEnd_beyondItsLimit_resetsAndThrows() async throws {
        try await withClient { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 30, sendWindow: 100)
            supervisor.send(.data, id: 30, body: [UInt8](repeating: 1, count: 60))
            supervisor.send(.data, id: 30, body: [UInt8](repeating: 1, count: 60))
            await #expect(throws: WireError(.tooMuchData, "")) { _ = try await stream.readToEnd(limit: 100) }
            #expect(try await supervisor.expect(.reset, skipping: [.credit]).header.id == 30)
        }
    }

    @Test func read_concurrentReaderIsBusy_andACancelledReadLosesNothing() async throws {
        try await withClient { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 40, sendWindow: 100)
            // Two readers at once: one waits, the other is turned away with stream_busy.
            let finished = ScriptedInbox<Int>()
            let reads = (0..<2).map { index in
                Task {
                    defer { finished.post(index) }
                    return try await stream.read()
                }
            }
            let busy = try #require(await finished.next(within: .seconds(5)))
            await #expect(throws: WireError(.streamBusy, "")) { _ = try await reads[busy].value }
            supervisor.send(.data, id: 40, body: Array("one".utf8))
            #expect(try await reads[1 - busy].value.map { String(buffer: $0) } == "one")

            // A read cancelled while waiting throws CancellationError; the next read gets the bytes.
            let cancelled = Task { try await stream.read() }
            cancelled.cancel()
            await #expect(throws: CancellationError.self) { _ = try await cancelled.value }
            supervisor.send(.data, id: 40, body: Array("two".utf8))
            #expect(try await stream.read().map { String(buffer: $0) } == "two")
        }
    }

    @Test func close_failsPendingRequestsAndOpenStreamsWithClientClosed() async throws {
        try await withClient { supervisor, client in
            let stream = try await openStream(supervisor, client, id: 8, sendWindow: 100)
            let reading = Task { try await stream.read() }
            let opening = Task { try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(Self.peer)) }
            _ = try await supervisor.expect(.open)
            await client.close()
            await #expect(throws: WireError(.clientClosed, "")) { _ = try await opening.value }
            await #expect(throws: WireError(.clientClosed, "")) { _ = try await reading.value }
            await #expect(throws: WireError(.clientClosed, "")) { try await stream.write([1]) }
            await #expect(throws: WireError(.clientClosed, "")) { _ = try await client.status() }
            await client.close()
        }
    }

    // MARK: Helpers

    /// A client connected to a fresh scripted supervisor (which answers the connect's STATUS),
    /// both shut down after `body`.
    private func withClient(
        _ configuration: SupervisorClient.Configuration = .init(),
        _ body: (ScriptedSupervisor, SupervisorClient) async throws -> Void
    ) async throws {
        let supervisor = try ScriptedSupervisor()
        // Connecting is not what these tests time: a full run on 2 loaded cores was seen to take
        // over 5 s to get the first STATUS across.
        var configuration = configuration
        configuration.connectTimeout = max(configuration.connectTimeout, .seconds(30))
        do {
            let connecting = Task { try await SupervisorClient.connect(to: supervisor.endpoint, configuration: configuration) }
            try await supervisor.answerStatus(within: .seconds(30))
            let client = try await connecting.value
            do {
                try await body(supervisor, client)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
        } catch {
            await supervisor.shutDown()
            throw error
        }
        await supervisor.shutDown()
    }

    /// Opens a stream the scripted supervisor answers with `id` and `sendWindow`.
    private func openStream(_ supervisor: ScriptedSupervisor, _ client: SupervisorClient, id: UInt64, sendWindow: UInt32) async throws -> SupervisedStream {
        let opening = Task { try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(Self.peer)) }
        let open = try await supervisor.expect(.open)
        supervisor.sendOpened(id: open.header.id, stream: id, sendWindow: sendWindow)
        return try await opening.value
    }

    /// Proves the client sent nothing since the last message taken: the next one is the STATUS
    /// of a `status()` started now (answered, so the call returns).
    private func barrier(_ supervisor: ScriptedSupervisor, _ client: SupervisorClient, skipping: Set<WireMessageType> = []) async throws {
        let statusing = Task { try await client.status() }
        let status = try await supervisor.expect(.status, skipping: skipping)
        supervisor.send(.statusReply, id: status.header.id, body: Array(ScriptedSupervisor.statusJSON.utf8))
        _ = try await statusing.value
    }
}
