import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

/// `peerpool listen`, `ping` and `stream` as a user runs them: real processes on loopback.
struct CLITests {
    @Test(.timeLimit(.minutes(3)))
    func listen_printsItsID52_andPingGetsPongs() async throws {
        let listener = try await ListenProcess()
        #expect(listener.identities.count == 1)

        let result = try await TestChild.runPeerpool(["ping", listener.address(), "--count", "2", "--interval", "0.05"])

        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n")
        try #require(lines.count == 2, "\(result)")
        #expect(lines[0].hasPrefix("pong from \(listener.identities[0]): "), "\(result)")
        #expect(lines[0].hasSuffix(" ms (connect + ping)"), "\(result)")
        #expect(lines[1].hasPrefix("pong from \(listener.identities[0]): "), "\(result)")
        #expect(lines[1].hasSuffix(" ms"), "\(result)")
        let stopped = await listener.stop()
        #expect(stopped.status == 0 && !stopped.killed, "listen should exit 0 at the end of its standard input")
    }

    @Test(.timeLimit(.minutes(3)))
    func listen_onSIGTERM_closesAndExitsZero() async throws {
        let listener = try await ListenProcess()
        let pinged = try await TestChild.runPeerpool(["ping", listener.address()])
        #expect(pinged.status == 0, "\(pinged)")

        let stopped = await listener.child.terminate(grace: .seconds(15))

        #expect(stopped.status == 0 && !stopped.killed, "listen should exit 0 on SIGTERM, got \(stopped)")
    }

    @Test(.timeLimit(.minutes(3)))
    func stream_echo_copiesStandardInputBack() async throws {
        let listener = try await ListenProcess()

        let result = try await TestChild.runPeerpool(
            ["stream", listener.address(), "--protocol", #"{"Generic":"echo"}"#], input: "hello\n")

        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "hello\n", "\(result)")
    }

    @Test(.timeLimit(.minutes(3)))
    func stream_sourceAndSink_moveTheAskedBytes() async throws {
        let listener = try await ListenProcess()
        let payload = String(repeating: "0123456789", count: 30_000)

        async let source = TestChild.runPeerpool(
            ["stream", listener.address(), "--protocol", #"{"Generic":"source"}"#, "--extra", "200000"])
        async let sink = TestChild.runPeerpool(
            ["stream", listener.address(), "--protocol", #"{"Generic":"sink"}"#], input: payload)

        let (sourced, sunk) = try await (source, sink)
        #expect(sourced.status == 0, "\(sourced)")
        #expect(sourced.stdout.utf8.count == 200_000)
        #expect(sunk.status == 0, "\(sunk)")
        #expect(sunk.stdout == "300000\n", "\(sunk)")
    }

    @Test(.timeLimit(.minutes(3)))
    func stream_unservedProtocol_failsSayingRefused() async throws {
        let listener = try await ListenProcess()

        let result = try await TestChild.runPeerpool(["stream", listener.address(), "--protocol", #""Tcp""#], input: "hello\n")

        #expect(result.status != 0, "\(result)")
        #expect(!result.timedOut)
        #expect(result.stderr.contains("protocol_refused"), "\(result)")
        #expect(result.stderr.contains("refused \"Tcp\""), "\(result)")
        #expect(result.stdout.isEmpty, "\(result)")
    }

    @Test(.timeLimit(.minutes(3)))
    func stream_badProtocolJSON_failsInOneLine() async throws {
        // Fails before connecting, so the address need not answer.
        let peer = SecretKey.generate().id52
        let result = try await TestChild.runPeerpool(["stream", "\(peer)@127.0.0.1:9", "--protocol", "{not json"])

        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("--protocol"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
    }

    @Test(.timeLimit(.minutes(3)))
    func ping_malformedID52_failsNamingIt() async throws {
        let result = try await TestChild.runPeerpool(["ping", "not-an-id52@127.0.0.1:9"])

        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("bad_address"), "\(result)")
        #expect(result.stderr.contains("not-an-id52"), "\(result)")
    }

    @Test(.timeLimit(.minutes(3)))
    func ping_wrongID52_failsNamingExpectedAndOfferedKeys() async throws {
        let listener = try await ListenProcess()
        let wrong = SecretKey.generate().id52

        let result = try await TestChild.runPeerpool(["ping", "\(wrong)@\(listener.host):\(listener.port)"])

        #expect(result.status != 0, "\(result)")
        #expect(!result.timedOut)
        #expect(result.stderr.contains("connect_failed"), "\(result)")
        #expect(result.stderr.contains("wrong_peer_key"), "\(result)")
        #expect(result.stderr.contains("expected the key of \(wrong)"), "\(result)")
        #expect(result.stderr.contains("offered the key of \(listener.identities[0])"), "\(result)")
    }

    @Test(.timeLimit(.minutes(3)))
    func ping_silentAddress_failsAtItsTimeout() async throws {
        // A stopped listener's port: nothing answers there, so only the timeout ends the wait.
        let listener = try await ListenProcess()
        let address = listener.address()
        _ = await listener.stop()
        let clock = ContinuousClock()
        let start = clock.now

        let result = try await TestChild.runPeerpool(["ping", address, "--timeout", "1"])

        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("connect_failed"), "\(result)")
        #expect(clock.now - start < .seconds(10), "--timeout 1 should end the wait in about a second")
    }

    @Test(.timeLimit(.minutes(3)))
    func listen_threeIdentities_eachAnswersPingAtTheOneAddress() async throws {
        let listener = try await ListenProcess(["--identities", "3"])
        try #require(listener.identities.count == 3)
        #expect(Set(listener.identities).count == 3)

        try await withThrowingTaskGroup(of: (Int, TestChild.Output).self) { group in
            for index in 0..<3 {
                group.addTask { (index, try await TestChild.runPeerpool(["ping", listener.address(index)])) }
            }
            for try await (index, result) in group {
                #expect(result.status == 0, "\(result)")
                #expect(result.stdout.hasPrefix("pong from \(listener.identities[index]): "), "\(result)")
            }
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func listen_withKeyFile_servesThatIdentity() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = SecretKey.generate()
        let path = directory.appendingPathComponent("listener.private-key").path
        try key.save(toFile: path)

        let listener = try await ListenProcess(["--key-file", path, "--identities", "2"])

        #expect(listener.identities.count == 2)
        #expect(listener.identities.first == key.id52)
        let result = try await TestChild.runPeerpool(["ping", listener.address(0)])
        #expect(result.status == 0, "\(result)")
    }
}
