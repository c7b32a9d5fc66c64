import ArgumentParser
import Foundation
import NIOCore
import PeerpoolCommandSupport
import PeerpoolIdentity
import PeerpoolPool

/// `peerpool-bench relay`: peerpool against iroh through one iroh relay (the tests' Python
/// relay, `iroh_relay.py`), in a loopback-only network namespace with UDP blocked (nftables), so
/// every byte crosses the relay: iroh → iroh, peerpool → iroh and iroh → peerpool, each to a
/// `{"Generic":"sink"}`, the peers named by ID52 and relay URL only.
struct BenchRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "peerpool against iroh through the same iroh relay, UDP blocked: throughput, CPU per GiB, connect.",
        discussion: """
            Runs in a loopback-only network namespace (unshare --net; root, iproute2, nftables) \
            where an nftables rule drops every UDP packet, so QUIC packets travel only as relay \
            datagrams over the relay's WebSocket. The relay is the tests' Python relay: it is \
            the ceiling for both sides, which is why the figures that matter are the ratios and \
            the CPU per GiB of each process (sender, sink, relay). Ratios: throughput \
            ours / iroh (>= 1 meets the goal); connect + first ping iroh / ours (>= 1: at least \
            as fast). Needs ./deploy/setup.sh --test.
            """
    )

    @Option(help: "MiB each transfer moves.")
    var mib = 16

    @Option(name: .customLong("repeat"), help: "Runs of each pairing; medians are reported.")
    var repeatCount = 3

    @Option(help: "Python with the iroh package (default: .venv-test/bin/python of the package).")
    var python: String?

    @Flag(help: .hidden)
    var inNamespace = false

    func validate() throws {
        guard (1...1024).contains(mib) else { throw ValidationError("--mib must be between 1 and 1024") }
        guard (1...20).contains(repeatCount) else { throw ValidationError("--repeat must be between 1 and 20") }
    }

    func run() async throws {
        guard BenchIrohNamespace.isLoopbackOnly else {
            guard !inNamespace else { throw CommandError(.childFailed, "the new network namespace has more than lo") }
            var arguments = ["relay", "--mib", "\(mib)", "--repeat", "\(repeatCount)", "--in-namespace"]
            if let python { arguments += ["--python", python] }
            let status = try await BenchIrohNamespace.rerunIsolated(arguments)
            if status != 0 { throw ExitCode(status) }
            return
        }
        try await Self.blockUDP()
        var python = try BenchIrohPython.locate(python: python, byteCopy: false)
        let relay = try await Self.startRelay(python: python)
        defer { Task { [process = relay.process] in process.closeStandardInput(); _ = try? await process.terminate(grace: .seconds(2)) } }
        python.relay = relay.url
        let bytes = mib * 1_048_576
        let timeout = Duration.seconds(120) + .seconds(2 * mib)
        print("bench relay: \(mib) MiB per transfer, \(repeatCount) runs per pairing; relay \(relay.url) (pid \(relay.process.pid)); UDP dropped by nftables")

        let iroh = try await python.serve()
        defer { Task { [process = iroh.process] in process.closeStandardInput(); _ = try? await process.terminate(grace: .seconds(2)) } }
        let listener = try await ListenerProcess.start(
            executable: BenchTransportOurs.peerpoolExecutable, identities: 1, arguments: ["--relay", relay.url])
        defer { Task { await listener.stop(grace: .seconds(2)) } }
        let irohSink = PeerAddress(iroh.peer.id52)
        let ourSink = PeerAddress(listener.identities[0])

        var rows: [String: [Run]] = [:]
        for run in 1...repeatCount {
            let pairings: [(String, Int32, () async throws -> BenchIrohPython.Sent)] = [
                ("iroh → iroh", iroh.process.pid, { try await python.send(to: irohSink, bytes: bytes, timeout: timeout, viaRelay: relay.url) }),
                ("peerpool → iroh", iroh.process.pid, { try await BenchIrohCommand.send(to: irohSink, bytes: bytes, timeout: timeout, viaRelay: relay.url) }),
                ("iroh → peerpool", listener.process.pid, { try await python.send(to: ourSink, bytes: bytes, timeout: timeout, viaRelay: relay.url) }),
            ]
            var line = "run \(run):"
            for (name, sink, body) in pairings {
                let (sinkBefore, relayBefore) = (BenchUsage.process(sink).cpuSeconds, BenchUsage.process(relay.process.pid).cpuSeconds)
                let sent = try await body()
                let result = Run(
                    sent: sent, sinkCPU: BenchUsage.process(sink).cpuSeconds - sinkBefore,
                    relayCPU: BenchUsage.process(relay.process.pid).cpuSeconds - relayBefore)
                rows[name, default: []].append(result)
                line += String(format: " %@ %.1f MB/s;", name, sent.megabytesPerSecond)
            }
            print(line)
        }
        Self.report(rows, mib: mib)
    }

    struct Run {
        let sent: BenchIrohPython.Sent
        let sinkCPU: Double
        let relayCPU: Double
        var gib: Double { Double(sent.bytes) / Double(1 << 30) }
    }

    static func report(_ rows: [String: [Run]], mib: Int) {
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let anchor = rows["iroh → iroh"] ?? []
        let anchorMBps = median(anchor.map(\.sent.megabytesPerSecond))
        let anchorConnect = median(anchor.map(\.sent.connect_and_ping_ms))
        print("")
        print(BenchText.pad("pairing (medians)", 18) + "      MB/s  ratio   connect+ping ms  ratio   CPU-s per GiB: sender   sink  relay")
        for name in ["iroh → iroh", "peerpool → iroh", "iroh → peerpool"] {
            let runs = rows[name] ?? []
            let mbps = median(runs.map(\.sent.megabytesPerSecond))
            let connect = median(runs.map(\.sent.connect_and_ping_ms))
            print(BenchText.pad(name, 18) + String(
                format: " %9.1f  %5.2f   %15.1f  %5.2f   %20.2f %6.2f %6.2f",
                mbps, mbps / max(anchorMBps, 1e-9), connect, anchorConnect / max(connect, 1e-9),
                median(runs.map { $0.sent.cpu_s / $0.gib }), median(runs.map { $0.sinkCPU / $0.gib }),
                median(runs.map { $0.relayCPU / $0.gib })))
        }
        print("""

            Ratios against iroh → iroh through the same relay: throughput ours/iroh (>= 1 meets the
            goal); connect + first ping iroh/ours (>= 1: at least as fast). \(mib) MiB per transfer.
            """)
    }

    /// Drops every UDP packet leaving this namespace: QUIC can then only use the relay.
    static func blockUDP() async throws {
        guard let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CommandError(.missingTool, "nft is needed to block UDP: apt-get install -y nftables (deploy/setup.sh --test installs it)")
        }
        let child = try ChildProcess(
            executable: nft,
            arguments: ["add table inet peerpool_bench; add chain inet peerpool_bench output { type filter hook output priority 0; policy accept; }; add rule inet peerpool_bench output meta l4proto udp drop"],
            standardInput: .null, standardOutput: .inherit, standardError: .inherit)
        guard try await child.wait(timeout: .seconds(10)).succeeded else {
            throw CommandError(.childFailed, "nft could not add the rule that drops UDP")
        }
    }

    /// The tests' Python relay on a free loopback port.
    static func startRelay(python: BenchIrohPython) async throws -> (process: ChildProcess, url: String) {
        let script = python.root.appendingPathComponent("Tests/PeerpoolTestSupport/Scripts/iroh_relay.py").path
        let process = try ChildProcess(
            executable: python.python, arguments: [script], standardInput: .pipe, standardOutput: .pipe, standardError: .inherit)
        let line = try await process.readLine(timeout: .seconds(30))
        guard let line, line.hasPrefix("LISTENING "), let port = Int(line.dropFirst("LISTENING ".count)) else {
            _ = try? await process.terminate(grace: .seconds(1))
            throw CommandError(.childFailed, "iroh_relay.py answered \(line.map { "\"\($0.prefix(200))\"" } ?? "nothing") instead of LISTENING <port>")
        }
        return (process, "http://127.0.0.1:\(port)")
    }
}
