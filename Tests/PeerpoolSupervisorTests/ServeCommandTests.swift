import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport
import PeerpoolWire
import Testing

/// `peerpool serve` as an operator starts it: where its identity comes from, what it refuses
/// before printing SERVING, and the configuration it hands its workers.
@Suite(.timeLimit(.minutes(3)))
struct ServeCommandTests {
    static let keyVariable = "PEERPOOL_SECRET_KEY"

    @Test func secretKeyFromTheEnvironment_isServesIdentity_andStaysOutOfTheWorkers() async throws {
        let key = SecretKey.generate()
        var environment = ProcessInfo.processInfo.environment
        environment[Self.keyVariable] = key.hexSeed
        try await ServeProcess.with(workers: 1, environment: environment) { serve, _, pids in
            #expect(serve.identity == key.id52)
            for pid in pids {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
                let text = String(decoding: bytes, as: UTF8.self).lowercased()
                #expect(!text.contains(Self.keyVariable.lowercased()) && !text.contains(key.hexSeed), "worker \(pid) inherited the key")
            }
        }
    }

    @Test func malformedSecretKeyInTheEnvironment_failsServe_namingTheVariable() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        var command = TestChild.Command.peerpool(["serve", "--workers", "1", "--runtime-dir", directory.path])
        command.environment = ProcessInfo.processInfo.environment.merging([Self.keyVariable: "not-a-key"]) { $1 }
        let result = try await TestChild.run(command, within: SupervisorFixture.deadline)
        #expect(result.status == 1, "\(result)")
        #expect(!result.stdout.contains("SERVING"), "\(result)")
        #expect(result.stderr.contains("environment_variable_malformed") && result.stderr.contains(Self.keyVariable), "\(result)")
    }

    /// Before this was checked, serve printed SERVING and every worker then exited at start,
    /// over and over, into restart backoff.
    @Test(arguments: [
        ("missing", nil, "cannot read"),
        ("bad line", "\(SecretKey.generate().id52) 127.0.0.1:1\nnot-an-id52 127.0.0.1:2\n", "peers.txt:2:"),
        // Read whole, it would fill memory.
        ("device", nil, "/dev/zero: not a regular file"),
    ] as [(String, String?, String)])
    func unusableAddressBook_failsServeBeforeServing(name: String, contents: String?, detail: String) async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let book = name == "device" ? "/dev/zero" : directory.file("peers.txt")
        if let contents { try contents.write(toFile: book, atomically: false, encoding: .utf8) }
        let result = try await TestChild.run(
            .peerpool(["serve", "--workers", "1", "--runtime-dir", directory.path, "--address-book", book]),
            within: SupervisorFixture.deadline)
        #expect(result.status == 1, "\(name): \(result)")
        #expect(!result.stdout.contains("SERVING"), "\(name): \(result)")
        #expect(result.stderr.contains("address_book") && result.stderr.contains(detail), "\(name): \(result)")
    }

    @Test func workersAuto_onTheCommandLine_startsOnePerCore() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let child = try TestChild(.peerpool(["serve", "--workers", "auto", "--runtime-dir", directory.path]))
        let serving = try await child.nextLine(within: SupervisorFixture.deadline)
        _ = await child.kill()
        let cores = min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 1024)
        #expect(serving.hasPrefix("SERVING ") && serving.hasSuffix(" \(cores)"), "\(serving)")
    }

    /// An OPEN without `timeout_ms` gets `default_request_timeout`, and the worker (which knows
    /// why) answers `timeout` at it; the supervisor's later backstop answer never comes first.
    @Test func openWithoutATimeout_failsAtTheConfiguredDefault_answeredByTheWorker() async throws {
        let silent = try SilentPeer()
        try await EmbeddedSupervisor.with(workers: 1, { $0.defaultRequestTimeout = .milliseconds(700) }) { embedded in
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            let body = #"{"remote":"\#(SecretKey.generate().id52)","protocol":"Ping","address":"\#(silent.hostPort)"}"#
            dealer.send(.open, id: 1, body: Array(body.utf8))
            let answer = try await dealer.expect(.error, id: 1)
            await dealer.close()
            #expect(answer.error.code == .timeout, "\(answer)")
            #expect(answer.error.message.contains("within 700 ms"), "\(answer)")
        }
    }
}
