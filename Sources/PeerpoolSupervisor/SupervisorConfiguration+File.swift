#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import PeerpoolPool
import Yams

/// Reading a configuration from YAML, such as `deploy/peerpool.yaml`.
///
/// The file is a mapping of snake_case options (`hang_timeout: 2.5`) with a nested `pool:`
/// mapping. Durations are numbers of seconds, `workers` may be `auto`, and a missing option keeps
/// its default. An unknown option, a value of the wrong type and a value out of range are all
/// errors naming the file, line and option: a typo must not silently leave a limit at its default.
extension SupervisorConfiguration {
    /// The largest configuration file read; anything bigger is not a configuration.
    static let maxFileSize = 1 << 20

    /// Reads and validates the YAML configuration at `path`. Throws
    /// `SupervisorConfigurationError` with `.unreadableFile` if it cannot be read, else as
    /// ``init(yaml:source:)``.
    public init(contentsOfFile path: String) throws {
        let text = try Self.readFile(path)
        try self.init(yaml: text, source: path)
    }

    /// Parses and validates YAML text; `source` names it in errors (the file path, usually).
    /// Empty text gives the defaults.
    public init(yaml: String, source: String = "<string>") throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw Self.describe(error, source: source)
        } catch {
            throw SupervisorConfigurationError(.invalidYAML, file: source, "\(error)")
        }

        var configuration = SupervisorConfiguration()
        var lines: [String: Int] = [:]
        if let root {
            guard case .mapping(let mapping) = root else {
                throw SupervisorConfigurationError(
                    .invalidYAML, file: source, line: root.mark?.line,
                    "expected a mapping of options (`workers: 4`, one per line), got \(YAMLValue.kind(of: root))")
            }
            try YAMLValue.apply(mapping, options: Self.options, section: nil, to: &configuration, source: source, lines: &lines)
        }
        do {
            self = try configuration.validated()
        } catch var error as SupervisorConfigurationError {
            error.file = source
            error.line = error.key.flatMap { lines[$0] }
            throw error
        }
    }

    // MARK: Options

    /// Every top-level option, in the order `deploy/peerpool.yaml` lists them.
    static let options: [YAMLOption<SupervisorConfiguration>] = [
        .init("workers") { configuration, value in
            if value.isString("auto") {
                configuration.workers = SupervisorConfiguration.defaultWorkers()
            } else {
                configuration.workers = try value.int(expected: "an integer or auto")
            }
        },
        .init("runtime_directory") { $0.runtimeDirectory = try $1.string() },
        .init("worker_command") { $0.workerCommand = try $1.isNull ? nil : $1.strings() },
        .init("key_files") { $0.keyFiles = try $1.strings() },
        .init("ephemeral_identities") { $0.ephemeralIdentities = try $1.int() },
        .init("address_book") { $0.addressBook = try $1.isNull ? nil : $1.string() },
        .init("heartbeat_interval") { $0.heartbeatInterval = try $1.duration() },
        .init("hang_timeout") { $0.hangTimeout = try $1.duration() },
        .init("start_timeout") { $0.startTimeout = try $1.duration() },
        .init("max_restarts") { $0.maxRestarts = try $1.int() },
        .init("restart_window") { $0.restartWindow = try $1.duration() },
        .init("initial_backoff") { $0.initialBackoff = try $1.duration() },
        .init("max_backoff") { $0.maxBackoff = try $1.duration() },
        .init("shutdown_grace_period") { $0.shutdownGracePeriod = try $1.duration() },
        .init("default_request_timeout") { $0.defaultRequestTimeout = try $1.duration() },
        .init("max_request_timeout") { $0.maxRequestTimeout = try $1.duration() },
        .init("max_requests_per_client") { $0.maxRequestsPerClient = try $1.int() },
        .init("max_streams_per_client") { $0.maxStreamsPerClient = try $1.int() },
        .init("max_streams_per_client_per_peer") { $0.maxStreamsPerClientPerPeer = try $1.int() },
        .init("max_pending_per_shard") { $0.maxPendingPerShard = try $1.int() },
        .init("default_window") { $0.defaultWindow = try $1.int() },
        .init("max_window") { $0.maxWindow = try $1.int() },
        .init("pool") { configuration, value in
            try value.section(SupervisorConfiguration.poolOptions, to: &configuration.pool)
        },
    ]

    /// The options of the nested `pool:` mapping (`PoolConfiguration`).
    static let poolOptions: [YAMLOption<PoolConfiguration>] = [
        .init("connect_timeout") { $0.connectTimeout = try $1.duration() },
        .init("ack_timeout") { $0.ackTimeout = try $1.duration() },
        .init("ping_interval") { $0.pingInterval = try $1.duration() },
        .init("idle_periods_before_close") { $0.idlePeriodsBeforeClose = try $1.int() },
        .init("max_connections") { $0.maxConnections = try $1.int() },
        .init("max_waiters_per_peer") { $0.maxWaitersPerPeer = try $1.int() },
        .init("close_code") { $0.closeCode = try $1.uint64() },
    ]

    // MARK: Reading the file

    /// The file's text, read with plain system calls so the error names the OS's reason.
    private static func readFile(_ path: String) throws -> String {
        func failure(_ what: String, _ code: Int32) -> SupervisorConfigurationError {
            SupervisorConfigurationError(
                .unreadableFile, file: path, "cannot \(what): \(String(cString: strerror(code))) (errno \(code))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", errno) }
        defer { close(fd) }

        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat", errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw SupervisorConfigurationError(.unreadableFile, file: path, "is not a regular file")
        }

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", errno)
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= maxFileSize else {
                throw SupervisorConfigurationError(
                    .unreadableFile, file: path, "is larger than \(maxFileSize) bytes; not a configuration file")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SupervisorConfigurationError(.invalidYAML, file: path, "is not UTF-8 text")
        }
        return text
    }

    /// A Yams error as one line: libyaml's problem and where, without the multi-line snippet.
    private static func describe(_ error: YamlError, source: String) -> SupervisorConfigurationError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return SupervisorConfigurationError(.invalidYAML, file: source, line: mark.line, "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.joined(separator: ", ")
            return SupervisorConfigurationError(
                .invalidYAML, key: keys, file: source, line: context.mark.line, "given more than once")
        default:
            return SupervisorConfigurationError(.invalidYAML, file: source, "invalid YAML: \(error)")
        }
    }
}

// MARK: - Typed access to YAML values

/// One option of a YAML mapping: its key and how it sets its field of `Target`.
struct YAMLOption<Target>: Sendable {
    let key: String
    let apply: @Sendable (inout Target, YAMLValue) throws -> Void

    init(_ key: String, _ apply: @escaping @Sendable (inout Target, YAMLValue) throws -> Void) {
        self.key = key
        self.apply = apply
    }
}

/// A YAML value and the option it belongs to, with accessors that check the type strictly (a
/// quoted `"4"` is not a number, `4.0` is not an integer) and throw errors naming the option.
struct YAMLValue {
    let node: Node
    /// The option's full key (`pool.connect_timeout`).
    let key: String
    let source: String
    /// Lines of the options read so far, by full key, for errors found after parsing.
    fileprivate let record: (String, Int) -> Void

    var line: Int? { node.mark?.line }

    var isNull: Bool { tag == Tag.Name.null.rawValue }

    func isString(_ text: String) -> Bool {
        tag == Tag.Name.str.rawValue && node.scalar?.string == text
    }

    func int(expected: String = "an integer") throws -> Int {
        guard tag == Tag.Name.int.rawValue, let scalar = node.scalar else { throw wrongType(expected) }
        guard let value = Int.construct(from: scalar) else {
            throw invalid("is too large for a 64-bit integer (got \(scalar.string))")
        }
        return value
    }

    func uint64() throws -> UInt64 {
        guard tag == Tag.Name.int.rawValue, let scalar = node.scalar else {
            throw wrongType("a non-negative integer")
        }
        guard let value = UInt64.construct(from: scalar) else {
            throw invalid("must be a non-negative integer of at most 64 bits (got \(scalar.string))")
        }
        return value
    }

    /// A number of seconds, integer or not, kept to the nanosecond.
    func duration() throws -> Duration {
        let expected = "a number of seconds (like 2.5)"
        guard let scalar = node.scalar else { throw wrongType(expected) }
        let seconds: Double
        switch tag {
        case Tag.Name.int.rawValue:
            guard let value = Int.construct(from: scalar) else {
                throw invalid("must be a number of seconds, at most 86400 (got \(scalar.string))")
            }
            seconds = Double(value)
        case Tag.Name.float.rawValue:
            guard let value = Double.construct(from: scalar) else { throw wrongType(expected) }
            seconds = value
        default:
            throw wrongType(expected)
        }
        // Bounded before converting, so an absurd value is an error rather than a trap; the
        // validation then applies each option's real range.
        guard seconds.isFinite, abs(seconds) <= 1e9 else {
            throw invalid("must be a finite number of seconds, at most 86400 (got \(scalar.string))")
        }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    func string() throws -> String {
        guard tag == Tag.Name.str.rawValue, let scalar = node.scalar else { throw wrongType("a string") }
        return scalar.string
    }

    func strings() throws -> [String] {
        let expected = "a list of strings (like [a, b], or one `- a` line each)"
        guard case .sequence(let sequence) = node else { throw wrongType(expected) }
        return try sequence.map { element in
            guard element.tag.description == Tag.Name.str.rawValue, let scalar = element.scalar else {
                throw SupervisorConfigurationError(
                    .wrongType, key: key, file: source, line: element.mark?.line ?? line,
                    "expected \(expected), got \(Self.kind(of: element)) in the list")
            }
            return scalar.string
        }
    }

    /// Applies a nested mapping (`pool:`) to `target` with `options`. An empty section (`pool:`
    /// with every option under it commented out) keeps the defaults.
    func section<Target>(_ options: [YAMLOption<Target>], to target: inout Target) throws {
        if isNull { return }
        guard case .mapping(let mapping) = node else {
            throw wrongType("a mapping of \(key) options (indented `name: value` lines)")
        }
        var lines: [String: Int] = [:]
        try Self.apply(mapping, options: options, section: key, to: &target, source: source, lines: &lines)
        for (key, line) in lines {
            record(key, line)
        }
    }

    // MARK: Mappings

    /// Sets `target`'s fields from `mapping`'s options; refuses an unknown key, suggesting the
    /// option it is closest to.
    static func apply<Target>(
        _ mapping: Node.Mapping, options: [YAMLOption<Target>], section: String?,
        to target: inout Target, source: String, lines: inout [String: Int]
    ) throws {
        for (keyNode, valueNode) in mapping {
            let name = keyNode.scalar?.string ?? "\(kind(of: keyNode))"
            let fullKey = section.map { "\($0).\(name)" } ?? name
            guard keyNode.scalar != nil, let option = options.first(where: { $0.key == name }) else {
                throw SupervisorConfigurationError(
                    .unknownKey, key: fullKey, file: source, line: keyNode.mark?.line,
                    unknownKeyMessage(name, known: options.map(\.key), section: section))
            }
            if let line = keyNode.mark?.line {
                lines[fullKey] = line
            }
            var nested: [String: Int] = [:]
            let value = YAMLValue(node: valueNode, key: fullKey, source: source) { nested[$0] = $1 }
            try option.apply(&target, value)
            lines.merge(nested) { _, new in new }
        }
    }

    private static func unknownKeyMessage(_ name: String, known: [String], section: String?) -> String {
        let what = section.map { "not a \($0) option" } ?? "not an option"
        if let suggestion = closest(to: name, in: known) {
            return "\(what); did you mean \(section.map { "\($0)." } ?? "")\(suggestion)?"
        }
        return "\(what); the \(section.map { "\($0) " } ?? "")options are \(known.joined(separator: ", "))"
    }

    /// The known key `name` is a misspelling of: the same once camelCase and dashes become
    /// snake_case, or within two edits of it.
    static func closest(to name: String, in known: [String]) -> String? {
        var normalized = ""
        for character in name {
            if character.isUppercase {
                if !normalized.isEmpty && normalized.last != "_" { normalized.append("_") }
                normalized.append(contentsOf: character.lowercased())
            } else {
                normalized.append(character == "-" || character == " " ? "_" : character)
            }
        }
        let scored = known.map { ($0, editDistance(Array(normalized.utf8), Array($0.utf8))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    /// Levenshtein distance.
    private static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    // MARK: Errors

    private var tag: String { node.tag.description }

    private func wrongType(_ expected: String) -> SupervisorConfigurationError {
        SupervisorConfigurationError(
            .wrongType, key: key, file: source, line: line, "expected \(expected), got \(Self.kind(of: node))")
    }

    private func invalid(_ message: String) -> SupervisorConfigurationError {
        SupervisorConfigurationError(.invalidValue, key: key, file: source, line: line, message)
    }

    /// What a node is, for "expected …, got …": `the string "four"`, `the number 2.5`, `a list`.
    static func kind(of node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            switch node.tag.description {
            case Tag.Name.null.rawValue: return "nothing"
            case Tag.Name.bool.rawValue: return "the boolean \(scalar.string)"
            case Tag.Name.int.rawValue, Tag.Name.float.rawValue: return "the number \(scalar.string)"
            case Tag.Name.str.rawValue: return "the string \"\(scalar.string)\""
            default: return "the value \(scalar.string) (\(node.tag))"
            }
        }
    }
}
