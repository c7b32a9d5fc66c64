import Foundation
import PeerpoolTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The iroh tests' network isolation. An iroh endpoint probes the LAN gateway (its port mapper
/// cannot be switched off), so every process that runs one must live in a network namespace
/// holding nothing but loopback. `IrohNamespaceTests` re-runs the `IrohInteropTests` suite of
/// this test binary under `unshare --net` with `environmentVariable` set; that suite and the
/// iroh peer script both refuse to run iroh anywhere else.
enum LoopbackNamespace {
    static let environmentVariable = "PEERPOOL_TEST_LOOPBACK_NAMESPACE"

    /// This process was started as the inner, namespaced run.
    static var requested: Bool {
        ProcessInfo.processInfo.environment[environmentVariable] == "1"
    }

    /// The network interfaces of this process's namespace (`if_nameindex`).
    static func interfaces() -> [String] {
        guard let list = if_nameindex() else { return [] }
        defer { if_freenameindex(list) }
        var names: [String] = []
        var entry = list
        while entry.pointee.if_index != 0, let name = entry.pointee.if_name {
            names.append(String(cString: name))
            entry += 1
        }
        return names
    }

    /// Whether iroh may run here: the inner run, in a namespace with only loopback.
    static var isInside: Bool { requested && interfaces() == ["lo"] }

    /// Set by the outer run for suites that need DNS inside the namespace: a resolv.conf naming
    /// 127.0.0.1, which the namespace's setup bind-mounts over /etc/resolv.conf (`unshare --mount`
    /// keeps that mount inside). iroh's DNS address lookup reads /etc/resolv.conf, and resolv.conf
    /// cannot name a port, so the tests' DNS server listens on 127.0.0.1:53.
    static let resolvConfVariable = "PEERPOOL_TEST_RESOLV_CONF"

    /// Throws unless /etc/resolv.conf, as this process sees it, names 127.0.0.1 and nothing else.
    static func requireLocalResolver() throws {
        let text = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        let servers = text.split(separator: "\n").filter { $0.hasPrefix("nameserver") }
        guard servers.map({ $0.split(separator: " ").last.map(String.init) }) == ["127.0.0.1"] else {
            throw IrohPeerError("/etc/resolv.conf here names \(servers), not only 127.0.0.1: this run needs "
                + "IrohNamespaceTests' bind mount (\(resolvConfVariable))")
        }
    }

    /// nftables rules dropping every UDP datagram to or from `ports` in this namespace, so a
    /// peer bound there can only be reached through a relay (its WebSocket is TCP).
    ///
    /// Not all UDP: on Linux, CoreFoundation's socket manager wakes itself with UDP datagrams
    /// over 127.0.0.1, and with those dropped Foundation's `Process` never learns that a child
    /// exited (the child stays a zombie, its pipe never reaches EOF, and the test hangs). Nor
    /// `udp dport != 53 udp sport != 53 drop`: with nftables 1.0.6 that also dropped queries to
    /// port 53 (sendto: EPERM). DNS is on port 53 and so never in `ports`.
    static func udpBlockRules(ports: [Int]) -> String {
        let set = ports.map(String.init).joined(separator: ", ")
        return """
            table inet peerpool_test {
                chain output {
                    type filter hook output priority 0; policy accept;
                    udp dport { \(set) } drop
                    udp sport { \(set) } drop
                }
            }
            """
    }

    /// Runs `body` with UDP to and from `ports` blocked (`udpBlockRules`), then removes the
    /// rules, whatever `body` did. Only inside the namespace; every test of a suite that uses
    /// it must be serialized (the rules apply to the whole namespace).
    static func withUDPBlocked<T>(ports: [Int], _ body: () async throws -> T) async throws -> T {
        try requireInside()
        guard !ports.isEmpty, !ports.contains(53) else { throw IrohPeerError("cannot block UDP ports \(ports)") }
        try await nft([], rules: udpBlockRules(ports: ports))
        do {
            let result = try await body()
            try await nft(["delete", "table", "inet", "peerpool_test"])
            return result
        } catch {
            try? await nft(["delete", "table", "inet", "peerpool_test"])
            throw error
        }
    }

    /// Runs `nft arguments` (the rules, if any, from a temporary file) to its end, at most 30 s.
    private static func nft(_ arguments: [String], rules: String? = nil) async throws {
        let nftPath = "/usr/sbin/nft"
        guard FileManager.default.isExecutableFile(atPath: nftPath) else {
            throw IrohPeerError("\(nftPath) is missing: run `deploy/setup.sh --test` (it installs nftables)")
        }
        let rulesPath = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-nft-\(UUID().uuidString).nft").path
        defer { try? FileManager.default.removeItem(atPath: rulesPath) }
        var argv = arguments
        if let rules {
            try Data(rules.utf8).write(to: URL(fileURLWithPath: rulesPath))
            argv += ["-f", rulesPath]
        }
        var command = TestChild.Command.program(nftPath, argv)
        command.standardInput = .null
        let output = try await TestChild.run(command, within: .seconds(30))
        guard output.status == 0 else {
            throw IrohPeerError("\(([nftPath] + argv).joined(separator: " ")) failed (\(output)): \(output.stderr)")
        }
    }

    /// Throws unless `isInside`: the last check before an iroh process starts.
    static func requireInside() throws {
        guard requested else {
            throw IrohPeerError("iroh runs only inside the loopback-only namespace that IrohNamespaceTests sets up; "
                + "run `swift test --skip-build --filter IrohNamespaceTests`")
        }
        let names = interfaces()
        guard names == ["lo"] else {
            throw IrohPeerError("refusing to start iroh: this network namespace has interfaces \(names), not only lo")
        }
    }
}
