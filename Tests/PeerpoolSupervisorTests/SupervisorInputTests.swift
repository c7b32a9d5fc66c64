import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
@testable import PeerpoolClient
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What clients send that they should not (garbage frames, over-long DATA, DATA beyond credit)
/// and clients that do not read: the supervisor answers each with its code, bounds the bytes in
/// flight, and goes on serving. Raw ZeroMQ DEALERs, so every byte is the test's choice.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SupervisorInputTests {
    struct GarbageCase: Sendable {
        var name: String
        var frames: [[UInt8]]
        var reply: WireMessageType
        var id: UInt64
        var code: WireError.Code
    }

    static func header(_ type: WireMessageType, _ id: UInt64, version: UInt8 = 1) -> [UInt8] {
        WireHeader(type, id: id, version: version).bytes
    }

    static func garbage(peer: ID52, stranger: ID52) -> [GarbageCase] {
        var reserved = header(.status, 103)
        reserved[3] = 1
        let open = Array(#"{"remote":"\#(peer)","protocol":"Ping"}"#.utf8)
        return [
            GarbageCase(name: "short header", frames: [Array(header(.status, 101).prefix(11))], reply: .error, id: 0, code: .malformedFrame),
            GarbageCase(name: "long header", frames: [header(.status, 101) + [0]], reply: .error, id: 0, code: .malformedFrame),
            GarbageCase(name: "version 2", frames: [header(.status, 102, version: 2)], reply: .error, id: 102, code: .unsupportedVersion),
            GarbageCase(name: "version 0", frames: [header(.open, 102, version: 0), open], reply: .error, id: 102, code: .unsupportedVersion),
            GarbageCase(name: "reserved bytes set", frames: [reserved], reply: .error, id: 103, code: .malformedFrame),
            GarbageCase(name: "unknown type 0x7f", frames: [header(WireMessageType(rawValue: 0x7f), 104)], reply: .error, id: 104, code: .unknownType),
            GarbageCase(name: "OPENED from a client", frames: [header(.opened, 104), [UInt8](repeating: 0, count: 16)], reply: .error, id: 104, code: .unknownType),
            GarbageCase(name: "HELLO from a client", frames: [header(.hello, 104), Array("{}".utf8)], reply: .error, id: 104, code: .unknownType),
            GarbageCase(name: "OPEN without body", frames: [header(.open, 105)], reply: .error, id: 105, code: .malformedFrame),
            GarbageCase(name: "OPEN not JSON", frames: [header(.open, 106), Array(#"{"remote": "oops"#.utf8)], reply: .error, id: 106, code: .badRequest),
            GarbageCase(name: "OPEN not UTF-8", frames: [header(.open, 106), [0xff, 0xfe, 0x7b]], reply: .error, id: 106, code: .badRequest),
            GarbageCase(name: "OPEN an array", frames: [header(.open, 106), Array("[1, 2]".utf8)], reply: .error, id: 106, code: .badRequest),
            GarbageCase(name: "OPEN bad remote", frames: [header(.open, 107), Array(#"{"remote":"zzz","protocol":"Ping"}"#.utf8)], reply: .error, id: 107, code: .badID52),
            GarbageCase(name: "OPEN no remote", frames: [header(.open, 107), Array(#"{"protocol":"Ping"}"#.utf8)], reply: .error, id: 107, code: .badRequest),
            GarbageCase(name: "OPEN no protocol", frames: [header(.open, 107), Array(#"{"remote":"\#(peer)"}"#.utf8)], reply: .error, id: 107, code: .badRequest),
            GarbageCase(name: "OPEN protocol 42", frames: [header(.open, 107), Array(#"{"remote":"\#(peer)","protocol":42}"#.utf8)], reply: .error, id: 107, code: .badRequest),
            GarbageCase(name: "OPEN window 0", frames: [header(.open, 107), Array(#"{"remote":"\#(peer)","protocol":"Ping","window":0}"#.utf8)], reply: .error, id: 107, code: .badRequest),
            GarbageCase(name: "OPEN timeout 0", frames: [header(.open, 107), Array(#"{"remote":"\#(peer)","protocol":"Ping","timeout_ms":0}"#.utf8)], reply: .error, id: 107, code: .badRequest),
            GarbageCase(name: "OPEN bad self", frames: [header(.open, 108), Array(#"{"remote":"\#(peer)","protocol":"Ping","self":"nope"}"#.utf8)], reply: .error, id: 108, code: .badID52),
            GarbageCase(name: "OPEN unknown self", frames: [header(.open, 108), Array(#"{"remote":"\#(peer)","protocol":"Ping","self":"\#(stranger)"}"#.utf8)], reply: .error, id: 108, code: .unknownIdentity),
            GarbageCase(name: "DATA to unknown stream", frames: [header(.data, 999), Array("hello".utf8)], reply: .aborted, id: 999, code: .unknownStream),
            GarbageCase(name: "FINISH to unknown stream", frames: [header(.finish, 998)], reply: .aborted, id: 998, code: .unknownStream),
            GarbageCase(name: "RESET to unknown stream", frames: [header(.reset, 997), WireInteger.bytes(UInt64(0))], reply: .aborted, id: 997, code: .unknownStream),
            GarbageCase(name: "DATA without body", frames: [header(.data, 996)], reply: .aborted, id: 996, code: .malformedFrame),
            GarbageCase(name: "STATUS request id 0", frames: [header(.status, 0)], reply: .error, id: 0, code: .malformedFrame),
            GarbageCase(name: "OPEN request id 0", frames: [header(.open, 0), open], reply: .error, id: 0, code: .malformedFrame),
            GarbageCase(name: "CANCEL request id 0", frames: [header(.cancel, 0)], reply: .error, id: 0, code: .malformedFrame),
            GarbageCase(name: "CANCEL with body", frames: [header(.cancel, 110), Array("x".utf8)], reply: .error, id: 110, code: .malformedFrame),
            GarbageCase(name: "STATUS with body", frames: [header(.status, 110), Array("x".utf8)], reply: .error, id: 110, code: .malformedFrame),
            GarbageCase(name: "three frames", frames: [header(.status, 111), Array("one".utf8), Array("two".utf8)], reply: .error, id: 111, code: .malformedFrame),
            GarbageCase(name: "five frames", frames: [header(.open, 111), open, [1], [2], [3]], reply: .error, id: 111, code: .malformedFrame),
        ]
    }

    @Test func garbageFrames_eachGetsItsCode_andTheSupervisorServesOn() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let peer = keys[0].id52
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        let window = 65_536
        try await EmbeddedSupervisor.with(workers: 1, { $0.defaultWindow = window }) { embedded in
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            do {
                try await Self.sendGarbage(dealer, peer: peer, listener: listener, silent: silent, window: window)
                await dealer.close()
            } catch {
                await dealer.close()
                throw error
            }
            // Still serving: a request, a status, and nothing left over from the garbage.
            #expect(try await embedded.client.echo("still here\n", to: listener.peer(peer)) == "still here\n")
            let status = try await embedded.client.status()
            #expect(status.workers.map(\.state) == ["running"])
            #expect(status.workers[0].restarts == 0)
            try await SupervisorFixture.waitUntil("the aborted streams and the cancelled request to be gone everywhere") {
                let status = try await embedded.supervisor.status()
                return status.streams == 0 && status.requests == 0 && status.workers[0].streams == 0 && status.workers[0].requests == 0
            }
        }
        await listener.stop()
        withExtendedLifetime(silent) {}
    }

    private static func sendGarbage(_ dealer: RawDealer, peer: ID52, listener: PeerListener, silent: SilentPeer, window: Int) async throws {
        for garbage in garbage(peer: peer, stranger: SecretKey.generate().id52) {
            dealer.send(frames: garbage.frames)
            let reply = await dealer.next()
            #expect(reply?.header?.type == garbage.reply, "\(garbage.name): \(reply.map(String.init(describing:)) ?? "no reply")")
            #expect(reply?.header?.id == garbage.id, "\(garbage.name): \(reply.map(String.init(describing:)) ?? "no reply")")
            #expect(reply?.error.code == garbage.code, "\(garbage.name): \(reply.map(String.init(describing:)) ?? "no reply")")
            #expect(reply?.error.message.isEmpty == false, "\(garbage.name): an error should say what was wrong")
        }
        let versionReply = try await {
            dealer.send(.status, id: 102, version: 2)
            return try await dealer.expect(.error, id: 102)
        }()
        #expect(versionReply.error.message.contains("version 1") && versionReply.error.message.contains("version 2"), "\(versionReply)")

        // CREDIT for an unknown stream and CANCEL of an unknown request get no answer: the next
        // message is the STATUS_REPLY that follows them.
        dealer.send(.credit, id: 995, body: WireInteger.bytes(UInt32(10)))
        dealer.send(.cancel, id: 994)
        dealer.send(.status, id: 993)
        let statusReply = try await dealer.expect(.statusReply, id: 993)
        #expect((try? JSONDecoder().decode(SupervisorStatus.self, from: Data(statusReply.body ?? []))) != nil)

        // A request id already waiting is refused; the waiting request is then cancelled.
        dealer.send(.open, id: 120, body: Array(openJSON(remote: SecretKey.generate().id52, address: silent.hostPort).utf8))
        dealer.send(.open, id: 120, body: Array(openJSON(remote: SecretKey.generate().id52, address: silent.hostPort).utf8))
        #expect(try await dealer.expect(.error, id: 120).error.code == .duplicateRequest)
        dealer.send(.cancel, id: 120)
        #expect(try await dealer.expect(.error, id: 120).error.code == .cancelled)

        let echo = openJSON(remote: peer, address: listener.hostPort, window: window)
        let streamMessages: Set<WireMessageType> = [.data, .credit, .finish]

        // DATA over 1 MiB on an open stream: the stream is aborted (and then unknown).
        let tooLarge = try await dealer.open(id: 130, json: echo)
        dealer.send(.data, id: tooLarge.stream, body: [UInt8](repeating: 1, count: 1_048_577))
        #expect(try await dealer.expect(.aborted, id: tooLarge.stream, skipping: streamMessages).error.code == .frameTooLarge)
        dealer.send(.data, id: tooLarge.stream, body: [1])
        #expect(try await dealer.expect(.aborted, id: tooLarge.stream, skipping: streamMessages).error.code == .unknownStream)

        // DATA beyond the send window OPENED granted.
        let overrun = try await dealer.open(id: 131, json: echo)
        #expect(overrun.sendWindow == window)
        dealer.send(.data, id: overrun.stream, body: [UInt8](repeating: 2, count: overrun.sendWindow + 1))
        #expect(try await dealer.expect(.aborted, id: overrun.stream, skipping: streamMessages).error.code == .flowControlViolation)

        // Stream messages with bodies of the wrong size.
        let badReset = try await dealer.open(id: 132, json: echo)
        dealer.send(.reset, id: badReset.stream, body: [0, 0, 0])
        #expect(try await dealer.expect(.aborted, id: badReset.stream, skipping: streamMessages).error.code == .malformedFrame)
        let badCredit = try await dealer.open(id: 133, json: echo)
        dealer.send(.credit, id: badCredit.stream, body: [0, 1])
        #expect(try await dealer.expect(.aborted, id: badCredit.stream, skipping: streamMessages).error.code == .malformedFrame)
        let badFinish = try await dealer.open(id: 134, json: echo)
        dealer.send(.finish, id: badFinish.stream, body: [1])
        #expect(try await dealer.expect(.aborted, id: badFinish.stream, skipping: streamMessages).error.code == .malformedFrame)

        // The same connection still gets normal service.
        let fine = try await dealer.open(id: 135, json: echo)
        dealer.send(.data, id: fine.stream, body: Array("fine\n".utf8))
        dealer.send(.finish, id: fine.stream)
        var echoed: [UInt8] = []
        for _ in 0..<1000 {
            guard let message = await dealer.next(), let header = message.header else {
                throw TestSupportError("the echo stream after the garbage got no answer")
            }
            if header.type == .data, header.id == fine.stream { echoed += message.body ?? [] }
            if header.type == .finish, header.id == fine.stream { break }
            if header.type == .aborted { throw TestSupportError("the echo stream after the garbage was aborted: \(message)") }
        }
        #expect(String(decoding: echoed, as: UTF8.self) == "fine\n")
    }

    @Test func pythonGarbageExample_printsTheExpectedCodeForEachCase() async throws {
        try Self.requirePythonZMQ()
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let script = PythonInterop.repositoryRoot.appendingPathComponent("examples/python/garbage.py").path
            let result = try await runProgram("/usr/bin/python3", [script, "--endpoint", embedded.supervisor.frontendEndpoint, "--timeout", "10"])
            #expect(result.status == 0, "\(result)")
            let expected = [
                "wrong_header_length 0x82 malformed_frame",
                "version_2 0x82 unsupported_version",
                "unknown_type 0x82 unknown_type",
                "open_invalid_json 0x82 bad_request",
                "open_bad_remote 0x82 bad_id52",
                "data_unknown_stream 0x14 unknown_stream",
                "request_id_zero 0x82 malformed_frame",
                "cancel_with_body 0x82 malformed_frame",
                "three_frames 0x82 malformed_frame",
            ]
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines == expected, "\(result)")
            // And the supervisor serves on.
            let status = try await embedded.client.status()
            #expect(status.workers.map(\.state) == ["running"])
        }
    }

    /// Debian's `python3-zmq` (`deploy/setup.sh --test` installs it) for the Python examples.
    static func requirePythonZMQ() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            throw TestSupportError("/usr/bin/python3 is missing: run deploy/setup.sh --test")
        }
    }

    @Test func slowClient_readingNothing_getsAtMostItsWindow_andTheWorkerStaysSmall_whileThePeerWouldSendAGigabyte() async throws {
        // Two peers, so each slow stream has a QUIC connection of its own (two stalled streams on
        // one connection hit a transport bug: twoSlowStreamsToOnePeer_bothResume).
        let keys = try SupervisorFixture.keys(on: [0, 0], workers: 1)
        let rawPeer = keys[0].id52
        let supervisedPeer = keys[1].id52
        let listener = try await PeerListener(keys: keys)
        let window = 262_144
        let clientConfiguration = SupervisorClient.Configuration(requestTimeout: .seconds(30), receiveWindow: window)
        try await EmbeddedSupervisor.with(workers: 1, client: clientConfiguration) { embedded in
            let workerPID = try await embedded.runningPIDs()[0]
            // Warm up: the worker's connections to both peers and its buffers exist before the
            // baseline.
            for peer in [rawPeer, supervisedPeer] {
                let warm = try await embedded.client.getStream(ProtocolHeader(.generic("source"), extra: "4194304"), to: listener.peer(peer))
                try await warm.finish()
                #expect(try await warm.readToEnd(limit: 8 << 20).readableBytes == 4 << 20)
            }
            let baseline = try #require(ProcessTable.residentBytes(workerPID))

            // Two streams that each ask for 1 GiB and read nothing: one on a raw DEALER (to count
            // every byte), one through SupervisorClient (which fails the stream with
            // protocol_violation if the supervisor ever overran its window).
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            do {
                let raw = try await dealer.open(id: 1, json: openJSON(
                    remote: rawPeer, address: listener.hostPort, protocol: #"{"Generic":"source"}"#, extra: "\(1 << 30)", window: window))
                dealer.send(.finish, id: raw.stream)
                let supervised = try await embedded.client.getStream(
                    ProtocolHeader(.generic("source"), extra: "\(1 << 30)"), to: listener.peer(supervisedPeer))
                try await supervised.finish()
                try await Self.checkSlowReaders(
                    dealer: dealer, raw: raw.stream, supervised: supervised, window: window, workerPID: workerPID, baseline: baseline)
                try await SupervisorFixture.waitUntil("the reset streams to be gone in the supervisor and the worker") {
                    let status = try await embedded.supervisor.status()
                    return status.streams == 0 && status.workers[0].streams == 0
                }
                let after = try #require(ProcessTable.residentBytes(workerPID))
                #expect(after - baseline < 64 << 20, "the worker grew by \((after - baseline) >> 20) MiB")
                #expect(dealer.inbox.dropped == 0)
                await dealer.close()
            } catch {
                await dealer.close()
                throw error
            }
        }
        await listener.stop()
    }

    /// The window is all a reader that reads nothing gets; the worker stays small meanwhile; both
    /// streams then move 8 MiB each as credit returns, and are reset.
    private static func checkSlowReaders(
        dealer: RawDealer, raw: UInt64, supervised: SupervisedStream, window: Int, workerPID: Int32, baseline: Int
    ) async throws {
        // The worker sends the whole window at once, then nothing while we return no credit.
        var received = 0
        for _ in 0..<100_000 {
            guard received < window, let message = await dealer.next() else { break }
            guard message.header?.type == .data, message.header?.id == raw else {
                throw TestSupportError("expected DATA on the source stream, got \(message)")
            }
            received += message.body?.count ?? 0
        }
        #expect(received == window, "before any CREDIT the client must get exactly its window")
        // A while with no reading: the peer would go on sending, nothing may arrive.
        let extra = await dealer.next(within: .seconds(3))
        #expect(extra == nil, "the supervisor sent beyond the window: \(extra.map(String.init(describing:)) ?? "")")
        let resident = try #require(ProcessTable.residentBytes(workerPID))
        #expect(resident - baseline < 64 << 20, "the worker grew by \((resident - baseline) >> 20) MiB while its clients read nothing")

        // Both streams are alive: 8 MiB from each, credit returned as we consume.
        var outstanding = 0
        var total = received
        dealer.send(.credit, id: raw, body: WireInteger.bytes(UInt32(received)))
        for _ in 0..<1_000_000 {
            guard total < 8 << 20 else { break }
            guard let message = await dealer.next() else { throw TestSupportError("the source stream stalled at \(total) bytes") }
            guard message.header?.type == .data, message.header?.id == raw, let body = message.body else {
                throw TestSupportError("expected DATA on the source stream, got \(message)")
            }
            #expect(body.allSatisfy { $0 == UInt8(ascii: "a") })
            outstanding += body.count
            total += body.count
            #expect(outstanding <= window, "\(outstanding) bytes arrived without CREDIT (window \(window))")
            if outstanding >= window / 4 {
                dealer.send(.credit, id: raw, body: WireInteger.bytes(UInt32(outstanding)))
                outstanding = 0
            }
        }
        #expect(total >= 8 << 20)
        let supervisedTotal = try await within(.seconds(60), "reading 8 MiB through SupervisorClient") { () async throws -> Int in
            var count = 0
            for _ in 0..<1_000_000 {
                guard count < 8 << 20, let chunk = try await supervised.read() else { break }
                count += chunk.readableBytes
            }
            return count
        }
        #expect(supervisedTotal >= 8 << 20)

        // Reset both: the supervisor forgets them (and the worker, checked by the caller).
        dealer.send(.reset, id: raw, body: WireInteger.bytes(UInt64(0)))
        await supervised.reset(code: 0)
        dealer.send(.data, id: raw, body: [1])
        #expect(try await dealer.expect(.aborted, id: raw, skipping: [.data, .credit, .finish]).error.code == .unknownStream)
    }

    /// Two streams to one peer, both left unread, then read one after the other: once, the
    /// unread one held the connection's credit and both stalled until the idle timeout.
    @Test
    func twoSlowStreamsToOnePeer_bothResume() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let peer = keys[0].id52
        let listener = try await PeerListener(keys: keys)
        let window = 262_144
        try await EmbeddedSupervisor.with(workers: 1, client: .init(requestTimeout: .seconds(30), receiveWindow: window)) { embedded in
            let client = embedded.client
            let first = try await client.getStream(ProtocolHeader(.generic("source"), extra: "\(1 << 30)"), to: listener.peer(peer))
            let second = try await client.getStream(ProtocolHeader(.generic("source"), extra: "\(1 << 30)"), to: listener.peer(peer))
            for stream in [first, second] {
                var count = 0
                for _ in 0..<100_000 {
                    guard count < window, let chunk = try await stream.read() else { break }
                    count += chunk.readableBytes
                }
            }
            // Both readers pause until the supervisor has filled both windows (each stream is
            // stalled on credit); then one reads 8 MiB while the other waits; then the other.
            try await SupervisorFixture.waitUntil("both streams' receive windows to fill") {
                let (left, right) = (try await first.receiveWindowLeft(), try await second.receiveWindowLeft())
                return left == 0 && right == 0
            }
            for (name, stream) in [("first", first), ("second", second)] {
                let count = try await within(.seconds(25), "8 MiB on the \(name) stream") { () async throws -> Int in
                    var count = 0
                    for _ in 0..<1_000_000 {
                        guard count < 8 << 20, let chunk = try await stream.read() else { break }
                        count += chunk.readableBytes
                    }
                    return count
                }
                #expect(count >= 8 << 20, "\(name)")
            }
            await first.reset(code: 0)
            await second.reset(code: 0)
        }
        await listener.stop()
    }
}
