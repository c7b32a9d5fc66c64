import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

/// What the commands refuse before they do anything, and how: exit 64 (usage) with a message
/// naming the option, never a trap, a hang or a value that wrapped around. Each case was found
/// by a stranger's script: `--timeout 1e300` trapped converting to a Duration, a port past
/// 65535 became a random one, `--waiters 0` made the demo fail itself.
@Suite(.timeLimit(.minutes(3)))
struct CLIArgumentTests {
    static let someone = SecretKey.generate().id52

    static let refusals: [(arguments: [String], message: String)] = [
        (["ping", "\(someone)@127.0.0.1:9", "--timeout", "1e300"], "--timeout must be between 0.001 and 86400 seconds"),
        (["ping", "\(someone)@127.0.0.1:9", "--timeout", "nan"], "--timeout must be between"),
        (["ping", "\(someone)@127.0.0.1:9", "--interval", "1e300"], "--interval must be between 0 and 86400 seconds"),
        (["stream", "\(someone)@127.0.0.1:9", "--protocol", "\"Ping\"", "--timeout", "0"], "--timeout must be between"),
        (["ping", "\(someone)"], "has no address: give it as id52@host:port, or find it by ID52 with --dns-origin or --pkarr-relay"),
        (["demo", "--waiters", "0"], "--waiters must be between 1 and 5000"),
        (["demo", "--mib", "99999999999999"], "--mib must be between 1 and 4096"),
        (["listen", "--address", "127.0.0.1:65535", "--identities", "2", "--socket-per-identity"],
         "--socket-per-identity needs 2 consecutive ports from 65535, past 65535"),
        (["listen", "--identities", "0"], "--identities must be between 1 and 100000"),
        (["serve", "--metrics", "127.0.0.1"], "--metrics must be host:port"),
        (["status", "--timeout", "1e300"], "--timeout must be between 0.001 and 86400 seconds"),
        (["serve", "--workers", "zero"], "--workers must be a number of workers (1 or more) or auto, not zero"),
    ]

    @Test(arguments: refusals)
    func refusedBeforeRunning_withUsageStatusAndAMessage(arguments: [String], message: String) async throws {
        let result = try await TestChild.runPeerpool(arguments)
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains(message), "\(result)")
    }

    /// A fault in what the user gave that only running finds (two files of one key) is an error
    /// with a code, not the top-level usage text.
    @Test func sameKeyFileTwice_failsWithACode_notTheUsageText() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("me.private-key").path
        try SecretKey.generate().save(toFile: path)
        let result = try await TestChild.runPeerpool(["listen", "--key-file", path, "--key-file", path, "--exit-on-stdin-eof"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("duplicate_identity"), "\(result)")
        #expect(!result.stderr.contains("USAGE"), "\(result)")
    }

    @Test func listen_withoutKeyFiles_servesTheKeyInPEERPOOL_SECRET_KEY() async throws {
        let key = SecretKey.generate()
        var command = TestChild.Command.peerpool(["listen", "--address", "127.0.0.1:0", "--exit-on-stdin-eof"])
        command.environment = ProcessInfo.processInfo.environment.merging(["PEERPOOL_SECRET_KEY": key.hexSeed]) { $1 }
        command.standardInput = .null
        let result = try await TestChild.run(command, within: .seconds(60))
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.dropFirst().first == key.id52.description, "\(result)")

        command.environment?["PEERPOOL_SECRET_KEY"] = "00"
        let refused = try await TestChild.run(command, within: .seconds(60))
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("environment_variable_malformed: Environment variable PEERPOOL_SECRET_KEY"), "\(refused)")
    }
}
