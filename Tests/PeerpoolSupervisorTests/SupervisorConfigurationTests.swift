import Foundation
import PeerpoolPool
import Testing

@testable import PeerpoolSupervisor

struct SupervisorConfigurationTests {
    // MARK: Defaults

    @Test func defaults_matchTheDocumentation() throws {
        let configuration = SupervisorConfiguration()
        #expect(configuration.workers == min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 1024))
        #expect(configuration.runtimeDirectory == SupervisorConfiguration.defaultRuntimeDirectory())
        #expect(configuration.workerCommand == nil)
        #expect(configuration.keyFiles == [])
        #expect(configuration.ephemeralIdentities == 1)
        #expect(configuration.addressBook == nil)
        #expect(configuration.heartbeatInterval == .milliseconds(250))
        #expect(configuration.hangTimeout == .seconds(3))
        #expect(configuration.startTimeout == .seconds(10))
        #expect(configuration.maxRestarts == 5)
        #expect(configuration.restartWindow == .seconds(10))
        #expect(configuration.initialBackoff == .milliseconds(500))
        #expect(configuration.maxBackoff == .seconds(30))
        #expect(configuration.shutdownGracePeriod == .seconds(10))
        #expect(configuration.defaultRequestTimeout == .seconds(10))
        #expect(configuration.maxRequestTimeout == .seconds(600))
        #expect(configuration.maxRequestsPerClient == 10_000)
        #expect(configuration.maxStreamsPerClient == 10_000)
        #expect(configuration.maxStreamsPerClientPerPeer == 50)
        #expect(configuration.maxPendingPerShard == 10_000)
        #expect(configuration.defaultWindow == 1_048_576)
        #expect(configuration.maxWindow == 16_777_216)
        #expect(Self.fields(configuration.pool, prefix: "pool.") == Self.fields(PoolConfiguration(), prefix: "pool."))
        _ = try configuration.validated()
    }

    @Test func defaultWorkers_isTheCoreCountWithinRange() {
        #expect(SupervisorConfiguration.defaultWorkers(activeProcessorCount: 0) == 1)
        #expect(SupervisorConfiguration.defaultWorkers(activeProcessorCount: 6) == 6)
        #expect(SupervisorConfiguration.defaultWorkers(activeProcessorCount: 4096) == 1024)
    }

    @Test func defaultRuntimeDirectory_usesXDGRuntimeDirWhenSet() {
        let uid: UInt32 = 1234
        #expect(
            SupervisorConfiguration.defaultRuntimeDirectory(environment: ["XDG_RUNTIME_DIR": "/run/user/1234"], uid: uid)
                == "/run/user/1234/peerpool")
        #expect(SupervisorConfiguration.defaultRuntimeDirectory(environment: ["XDG_RUNTIME_DIR": "/run/"], uid: uid) == "/run/peerpool")
        #expect(SupervisorConfiguration.defaultRuntimeDirectory(environment: ["XDG_RUNTIME_DIR": "/"], uid: uid) == "/peerpool")
    }

    @Test func defaultRuntimeDirectory_withoutXDGRuntimeDir_isPerUserInTmp() {
        #expect(SupervisorConfiguration.defaultRuntimeDirectory(environment: [:], uid: 1234) == "/tmp/peerpool-1234")
        // The XDG spec: an empty or relative value is to be ignored.
        #expect(SupervisorConfiguration.defaultRuntimeDirectory(environment: ["XDG_RUNTIME_DIR": ""], uid: 7) == "/tmp/peerpool-7")
        #expect(SupervisorConfiguration.defaultRuntimeDirectory(environment: ["XDG_RUNTIME_DIR": "run"], uid: 7) == "/tmp/peerpool-7")
        #expect(SupervisorConfiguration.defaultRuntimeDirectory(environment: [:]) == "/tmp/peerpool-\(getuid())")
    }

    // MARK: Reading YAML

    static let fullYAML = """
        workers: 3
        runtime_directory: /run/test-peerpool
        worker_command: [/opt/peerpool/bin/stand-in, worker, --verbose]
        key_files:
          - /var/lib/peerpool/a.private-key
          - /var/lib/peerpool/b.private-key
        ephemeral_identities: 4
        address_book: /etc/peerpool/peers.txt
        heartbeat_interval: 0.1
        hang_timeout: 2.5
        start_timeout: 20
        max_restarts: 0
        restart_window: 60
        initial_backoff: 0.125
        max_backoff: 120
        shutdown_grace_period: 30
        default_request_timeout: 5
        max_request_timeout: 3600
        max_requests_per_client: 100
        max_streams_per_client: 200
        max_streams_per_client_per_peer: 7
        max_pending_per_shard: 0
        default_window: 65536
        max_window: 1_048_576
        pool:
          connect_timeout: 3
          ack_timeout: 4
          ping_interval: 30
          idle_periods_before_close: 2
          max_connections: 500
          max_waiters_per_peer: 64
          close_code: 0x2a
        """

    @Test func fullYAML_setsEveryField() throws {
        let configuration = try SupervisorConfiguration(yaml: Self.fullYAML)
        #expect(configuration.workers == 3)
        #expect(configuration.runtimeDirectory == "/run/test-peerpool")
        #expect(configuration.workerCommand == ["/opt/peerpool/bin/stand-in", "worker", "--verbose"])
        #expect(configuration.keyFiles == ["/var/lib/peerpool/a.private-key", "/var/lib/peerpool/b.private-key"])
        #expect(configuration.ephemeralIdentities == 4)
        #expect(configuration.addressBook == "/etc/peerpool/peers.txt")
        #expect(configuration.heartbeatInterval == .milliseconds(100))
        #expect(configuration.hangTimeout == .milliseconds(2500))
        #expect(configuration.startTimeout == .seconds(20))
        #expect(configuration.maxRestarts == 0)
        #expect(configuration.restartWindow == .seconds(60))
        #expect(configuration.initialBackoff == .milliseconds(125))
        #expect(configuration.maxBackoff == .seconds(120))
        #expect(configuration.shutdownGracePeriod == .seconds(30))
        #expect(configuration.defaultRequestTimeout == .seconds(5))
        #expect(configuration.maxRequestTimeout == .seconds(3600))
        #expect(configuration.maxRequestsPerClient == 100)
        #expect(configuration.maxStreamsPerClient == 200)
        #expect(configuration.maxStreamsPerClientPerPeer == 7)
        #expect(configuration.maxPendingPerShard == 0)
        #expect(configuration.defaultWindow == 65536)
        #expect(configuration.maxWindow == 1_048_576)
        #expect(configuration.pool.connectTimeout == .seconds(3))
        #expect(configuration.pool.ackTimeout == .seconds(4))
        #expect(configuration.pool.pingInterval == .seconds(30))
        #expect(configuration.pool.idlePeriodsBeforeClose == 2)
        #expect(configuration.pool.maxConnections == 500)
        #expect(configuration.pool.maxWaitersPerPeer == 64)
        #expect(configuration.pool.closeCode == 42)

        // Every field the file can set differs from its default above, so a field added later
        // without a YAML key (or without a line here) fails this test.
        let defaults = Self.fields(SupervisorConfiguration())
        for (name, value) in Self.fields(configuration) where !Self.notInFile.contains(name) {
            #expect(value != defaults[name], "\(name) is not set by the full YAML, or has no key")
        }
    }

    @Test func missingKeys_keepDefaults_andEmptyTextIsAllDefaults() throws {
        let empty = try SupervisorConfiguration(yaml: "")
        #expect(Self.fields(empty) == Self.fields(SupervisorConfiguration()))
        let commentsOnly = try SupervisorConfiguration(yaml: "# nothing here\n")
        #expect(Self.fields(commentsOnly) == Self.fields(SupervisorConfiguration()))

        let some = try SupervisorConfiguration(yaml: "hang_timeout: 5\n")
        var expected = SupervisorConfiguration()
        expected.hangTimeout = .seconds(5)
        #expect(Self.fields(some) == Self.fields(expected))
    }

    @Test func workersAuto_isTheDefault() throws {
        let configuration = try SupervisorConfiguration(yaml: "workers: auto")
        #expect(configuration.workers == SupervisorConfiguration().workers)
        #expect(try SupervisorConfiguration(yaml: "workers: 7").workers == 7)
        // Quoted, `auto` is still the word auto; any other word is not.
        #expect(try SupervisorConfiguration(yaml: "workers: \"auto\"").workers == SupervisorConfiguration().workers)
        let error = try Self.error { try SupervisorConfiguration(yaml: "workers: many") }
        #expect(error.code == .wrongType)
        #expect(error.message.contains("an integer or auto"))
    }

    @Test func nestedPool_setsOnlyWhatItNames() throws {
        let configuration = try SupervisorConfiguration(
            yaml: """
                workers: 2
                pool:
                  connect_timeout: 1.5
                  max_connections: 7
                """)
        var expected = SupervisorConfiguration()
        expected.workers = 2
        expected.pool.connectTimeout = .milliseconds(1500)
        expected.pool.maxConnections = 7
        #expect(Self.fields(configuration) == Self.fields(expected))

        // `pool:` with everything under it commented out keeps the pool's defaults.
        let empty = try SupervisorConfiguration(yaml: "pool:\n  # connect_timeout: 3\n")
        #expect(Self.fields(empty) == Self.fields(SupervisorConfiguration()))

        let flow = try SupervisorConfiguration(yaml: "pool: {ack_timeout: 2, close_code: 9}")
        #expect(flow.pool.ackTimeout == .seconds(2))
        #expect(flow.pool.closeCode == 9)
    }

    @Test func nullOptionals_areNil() throws {
        let configuration = try SupervisorConfiguration(yaml: "worker_command:\naddress_book: ~\n")
        #expect(configuration.workerCommand == nil)
        #expect(configuration.addressBook == nil)
    }

    // MARK: The shipped deploy/peerpool.yaml

    static let shippedYAML = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/peerpool.yaml").path

    /// What the shipped file sets on purpose: a persistent identity in the unit's StateDirectory.
    static func shippedExpectation() -> SupervisorConfiguration {
        var expected = SupervisorConfiguration()
        expected.keyFiles = ["/var/lib/peerpool/identity.private-key"]
        return expected
    }

    @Test func shippedYAML_parses_andIsTheDefaultsExceptTheKeyFile() throws {
        let configuration = try SupervisorConfiguration(contentsOfFile: Self.shippedYAML)
        #expect(Self.fields(configuration) == Self.fields(Self.shippedExpectation()))
    }

    /// Removing the `#` of every `#option: value` line must give the defaults again: the values
    /// the file documents are the real defaults, and the file lists every option.
    @Test func shippedYAML_commentedOutOptions_areTheRealDefaults_andCoverEveryOption() throws {
        let text = try String(contentsOfFile: Self.shippedYAML, encoding: .utf8)
        let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard let hash = line.firstIndex(of: "#"), line[..<hash].allSatisfy({ $0 == " " }) else {
                return String(line)
            }
            let rest = line[line.index(after: hash)...]
            // `#name:` is an option left at its default; `# text` is an explanation.
            guard let first = rest.first, first.isLowercase, rest.contains(":") else { return String(line) }
            return String(line[..<hash] + rest)
        }.joined(separator: "\n")

        let configuration = try SupervisorConfiguration(yaml: uncommented, source: "uncommented peerpool.yaml")
        var expected = Self.shippedExpectation()
        expected.runtimeDirectory = "/run/peerpool"  // what the unit's XDG_RUNTIME_DIR=/run gives
        #expect(Self.fields(configuration) == Self.fields(expected))

        let keys = SupervisorConfiguration.options.map(\.key)
            + SupervisorConfiguration.poolOptions.map { "  \($0.key)" }
        for key in keys {
            #expect(uncommented.contains("\n\(key):"), "deploy/peerpool.yaml does not list \(key)")
        }
    }

    // MARK: Errors

    @Test func unknownKey_isAnError_namingTheKey_andTheLikelyOption() throws {
        let error = try Self.error {
            try SupervisorConfiguration(yaml: "workers: 2\nhang_timeot: 5\n", source: "peerpool.yaml")
        }
        #expect(error.code == .unknownKey)
        #expect(error.key == "hang_timeot")
        #expect(error.line == 2)
        #expect(error.description == "peerpool.yaml:2: hang_timeot: not an option; did you mean hang_timeout?")

        let camel = try Self.error { try SupervisorConfiguration(yaml: "maxRequestsPerClient: 5") }
        #expect(camel.message.contains("did you mean max_requests_per_client?"))

        let far = try Self.error { try SupervisorConfiguration(yaml: "colour: blue") }
        #expect(far.key == "colour")
        #expect(far.message.contains("the options are workers, runtime_directory"))

        let nested = try Self.error { try SupervisorConfiguration(yaml: "pool:\n  conect_timeout: 3\n") }
        #expect(nested.code == .unknownKey)
        #expect(nested.key == "pool.conect_timeout")
        #expect(nested.message == "not a pool option; did you mean pool.connect_timeout?")

        // A pool option at the top level is not silently accepted either.
        let misplaced = try Self.error { try SupervisorConfiguration(yaml: "connect_timeout: 3") }
        #expect(misplaced.code == .unknownKey)
    }

    @Test(arguments: [
        ("hang_timeout: \"3\"", "hang_timeout", "a number of seconds"),
        ("hang_timeout: 3s", "hang_timeout", "a number of seconds"),
        ("hang_timeout: [3]", "hang_timeout", "a number of seconds"),
        ("workers: 2.5", "workers", "an integer or auto"),
        ("max_window: true", "max_window", "an integer"),
        ("runtime_directory: 42", "runtime_directory", "a string"),
        ("key_files: /var/lib/peerpool/a.private-key", "key_files", "a list of strings"),
        ("key_files: [a, 3]", "key_files", "a list of strings"),
        ("worker_command: /bin/true", "worker_command", "a list of strings"),
        ("ephemeral_identities:", "ephemeral_identities", "an integer"),
        ("pool: 3", "pool", "a mapping"),
        ("pool:\n  close_code: 1.5", "pool.close_code", "a non-negative integer"),
        ("pool:\n  ack_timeout: ten", "pool.ack_timeout", "a number of seconds"),
    ])
    func wrongType_isAnError_namingTheKeyAndWhatWasExpected(_ yaml: String, _ key: String, _ expected: String) throws {
        let error = try Self.error { try SupervisorConfiguration(yaml: yaml) }
        #expect(error.code == .wrongType, "\(error)")
        #expect(error.key == key, "\(error)")
        #expect(error.message.contains("expected \(expected)"), "\(error)")
    }

    @Test func wrongType_saysWhatItGot() throws {
        let error = try Self.error { try SupervisorConfiguration(yaml: "hang_timeout: \"3\"", source: "peerpool.yaml") }
        #expect(
            error.description
                == "peerpool.yaml:1: hang_timeout: expected a number of seconds (like 2.5), got the string \"3\"")
    }

    @Test func outOfRange_isAnError_namingTheFileKeyAndValue() throws {
        let error = try Self.error {
            try SupervisorConfiguration(yaml: "workers: 1\nhang_timeout: -1\n", source: "peerpool.yaml")
        }
        #expect(error.code == .invalidValue)
        #expect(error.key == "hang_timeout")
        #expect(error.file == "peerpool.yaml")
        #expect(error.description == "peerpool.yaml:2: hang_timeout: must be more than 0 seconds (got -1)")
    }

    @Test(arguments: [
        ("workers: 0", "workers"),
        ("workers: 1025", "workers"),
        ("runtime_directory: run/peerpool", "runtime_directory"),
        ("runtime_directory: /\(String(repeating: "d", count: 93))", "runtime_directory"),
        ("worker_command: []", "worker_command"),
        ("key_files: [\"\"]", "key_files"),
        ("ephemeral_identities: 0", "ephemeral_identities"),
        ("address_book: \"\"", "address_book"),
        ("heartbeat_interval: 0", "heartbeat_interval"),
        ("heartbeat_interval: 0.0001", "heartbeat_interval"),  // under a millisecond
        ("hang_timeout: 0.2", "hang_timeout"),  // not more than the 0.25 s heartbeat
        ("start_timeout: 100000", "start_timeout"),  // more than a day: milliseconds meant?
        ("start_timeout: .inf", "start_timeout"),
        ("max_restarts: -1", "max_restarts"),
        ("restart_window: 0", "restart_window"),
        ("initial_backoff: -0.5", "initial_backoff"),
        ("max_backoff: 0.1", "max_backoff"),  // less than initial_backoff
        ("shutdown_grace_period: 0", "shutdown_grace_period"),
        ("default_request_timeout: 0", "default_request_timeout"),
        ("max_request_timeout: 5", "max_request_timeout"),  // less than default_request_timeout
        ("max_requests_per_client: 0", "max_requests_per_client"),
        ("max_streams_per_client: 0", "max_streams_per_client"),
        ("max_streams_per_client_per_peer: 0", "max_streams_per_client_per_peer"),
        ("max_pending_per_shard: -1", "max_pending_per_shard"),
        ("default_window: 0", "default_window"),
        ("default_window: 16777217", "default_window"),  // more than max_window
        ("max_window: 4294967296", "max_window"),
        ("workers: 99999999999999999999", "workers"),
        ("pool: {connect_timeout: 0}", "pool.connect_timeout"),
        ("pool: {ack_timeout: -3}", "pool.ack_timeout"),
        ("pool: {ping_interval: 0}", "pool.ping_interval"),
        ("pool: {idle_periods_before_close: 0}", "pool.idle_periods_before_close"),
        ("pool: {max_connections: 0}", "pool.max_connections"),
        ("pool: {max_waiters_per_peer: 0}", "pool.max_waiters_per_peer"),
        ("pool: {close_code: 4611686018427387904}", "pool.close_code"),
        ("pool: {close_code: -1}", "pool.close_code"),
    ])
    func outOfRange_isInvalidValue(_ yaml: String, _ key: String) throws {
        let error = try Self.error { try SupervisorConfiguration(yaml: yaml, source: "test.yaml") }
        #expect(error.code == .invalidValue, "\(error)")
        #expect(error.key == key, "\(error)")
        #expect(error.file == "test.yaml")
        #expect(error.line == 1, "\(error)")
    }

    @Test func validated_checksConfigurationsBuiltInCode() throws {
        var configuration = SupervisorConfiguration()
        configuration.maxBackoff = .milliseconds(100)
        let error = try Self.error { try configuration.validated() }
        #expect(error.code == .invalidValue)
        #expect(error.key == "max_backoff")
        #expect(error.file == nil)
        #expect(error.description == "max_backoff: must be at least initial_backoff (0.5 s) (got 0.1)")
    }

    @Test func invalidYAML_isAnError_withTheLine() throws {
        let broken = try Self.error { try SupervisorConfiguration(yaml: "workers: 2\nkey_files: [a, b\n", source: "p.yaml") }
        #expect(broken.code == .invalidYAML)
        #expect(broken.file == "p.yaml")
        #expect(broken.line != nil)
        #expect(!broken.description.contains("\n"), "one line: \(broken)")

        let list = try Self.error { try SupervisorConfiguration(yaml: "- workers: 2\n") }
        #expect(list.code == .invalidYAML)
        #expect(list.message.contains("expected a mapping of options"))

        let scalar = try Self.error { try SupervisorConfiguration(yaml: "workers") }
        #expect(scalar.code == .invalidYAML)

        let twice = try Self.error { try SupervisorConfiguration(yaml: "workers: 2\nworkers: 3\n") }
        #expect(twice.code == .invalidYAML)
        #expect(twice.key == "workers")
    }

    // MARK: Files

    @Test func contentsOfFile_readsAndNamesTheFileInErrors() throws {
        try Self.withTemporaryDirectory { directory in
            let path = "\(directory)/peerpool.yaml"
            try "workers: 2\npool:\n  max_connections: 9\n".write(toFile: path, atomically: true, encoding: .utf8)
            let configuration = try SupervisorConfiguration(contentsOfFile: path)
            #expect(configuration.workers == 2)
            #expect(configuration.pool.maxConnections == 9)

            try "workers: 2\nmax_window: 0\n".write(toFile: path, atomically: true, encoding: .utf8)
            let error = try Self.error { try SupervisorConfiguration(contentsOfFile: path) }
            #expect(error.description == "\(path):2: max_window: must be between 1 and 4294967295 (got 0)")
        }
    }

    @Test func unreadableFile_isAnError_namingTheFileAndReason() throws {
        try Self.withTemporaryDirectory { directory in
            let missing = "\(directory)/missing.yaml"
            let error = try Self.error { try SupervisorConfiguration(contentsOfFile: missing) }
            #expect(error.code == .unreadableFile)
            #expect(error.file == missing)
            #expect(error.message.contains("No such file or directory"), "\(error)")

            let directoryError = try Self.error { try SupervisorConfiguration(contentsOfFile: directory) }
            #expect(directoryError.code == .unreadableFile)

            let binary = "\(directory)/binary.yaml"
            #expect(FileManager.default.createFile(atPath: binary, contents: Data([0x77, 0xff, 0xfe, 0x0a])))
            let binaryError = try Self.error { try SupervisorConfiguration(contentsOfFile: binary) }
            #expect(binaryError.code == .invalidYAML)
            #expect(binaryError.message.contains("UTF-8"))

            // Root reads anything, so the permission case only means something for others.
            if getuid() != 0 {
                let locked = "\(directory)/locked.yaml"
                #expect(FileManager.default.createFile(atPath: locked, contents: Data("workers: 2\n".utf8)))
                chmod(locked, 0)
                let lockedError = try Self.error { try SupervisorConfiguration(contentsOfFile: locked) }
                #expect(lockedError.code == .unreadableFile)
                #expect(lockedError.message.contains("Permission denied"), "\(lockedError)")
            }
        }
    }

    // MARK: The error type

    @Test func errors_compareByCodeOnly() {
        let a = SupervisorConfigurationError(.invalidValue, key: "workers", "must be between 1 and 1024 (got 0)")
        let b = SupervisorConfigurationError(.invalidValue, key: "hang_timeout", file: "x.yaml", "other")
        let c = SupervisorConfigurationError(.unknownKey, key: "workers", "must be between 1 and 1024 (got 0)")
        #expect(a == b)
        #expect(a != c)
        #expect(a.description == "workers: must be between 1 and 1024 (got 0)")
        #expect(a.localizedDescription == a.description)
    }

    @Test func closestOption_handlesCaseDashesAndTypos() {
        let known = SupervisorConfiguration.options.map(\.key)
        #expect(YAMLValue.closest(to: "hangTimeout", in: known) == "hang_timeout")
        #expect(YAMLValue.closest(to: "hang-timeout", in: known) == "hang_timeout")
        #expect(YAMLValue.closest(to: "worker", in: known) == "workers")
        #expect(YAMLValue.closest(to: "listen_address", in: known) == nil)
    }

    // MARK: Helpers

    /// Fields that are not options of the file (none since the benchmark-only switch left the
    /// pool's configuration); kept so a future one is a deliberate choice.
    static let notInFile: Set<String> = []

    /// Every stored field, the pool's included, by name, as text; compares configurations without
    /// an `Equatable` conformance, and keeps up with fields added later.
    static func fields(_ value: Any, prefix: String = "") -> [String: String] {
        var result: [String: String] = [:]
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            if child.value is PoolConfiguration {
                result.merge(fields(child.value, prefix: "\(prefix)\(label).")) { $1 }
            } else {
                result["\(prefix)\(label)"] = String(describing: child.value)
            }
        }
        return result
    }

    static func error<T>(_ body: () throws -> T) throws -> SupervisorConfigurationError {
        do {
            let value = try body()
            Issue.record("expected an error, got \(value)")
        } catch let error as SupervisorConfigurationError {
            return error
        }
        throw SupervisorConfigurationError(.invalidValue, "no error")
    }

    static func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("peerpool-conf-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }
}
