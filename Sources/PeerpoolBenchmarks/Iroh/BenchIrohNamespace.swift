import Foundation
import PeerpoolCommandSupport

/// `peerpool-bench iroh` runs only where nothing but loopback exists: an iroh endpoint probes
/// the LAN gateway (port mapping) and cannot be told not to. Outside such a namespace the
/// command runs itself again under `unshare --net` (root only) with `lo` up.
enum BenchIrohNamespace {
    /// True when the only network interface is `lo`. Read from /proc/net/dev, which follows
    /// the process's network namespace (/sys/class/net follows the mount namespace instead).
    static var isLoopbackOnly: Bool {
        guard let table = try? String(contentsOfFile: "/proc/net/dev", encoding: .utf8) else { return false }
        let interfaces = table.split(separator: "\n").dropFirst(2).compactMap {
            $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces)
        }
        return interfaces == ["lo"]
    }

    /// Runs this executable with `arguments` in a new network namespace with `lo` up and
    /// returns its exit status.
    static func rerunIsolated(_ arguments: [String]) async throws -> Int32 {
        guard getuid() == 0 else {
            throw CommandError(.missingTool, "iroh must run in a loopback-only network namespace; creating one (unshare --net) needs root")
        }
        guard let unshare = ["/usr/bin/unshare", "/bin/unshare"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
              let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else {
            throw CommandError(.missingTool, "unshare (util-linux) and ip (iproute2) are needed: apt-get install -y util-linux iproute2")
        }
        let child = try ChildProcess(
            executable: unshare,
            arguments: ["--net", "--", "/bin/sh", "-c", "\(ip) link set lo up && exec \"$@\"", "sh", ChildProcess.currentExecutable] + arguments,
            standardInput: .null, standardOutput: .inherit, standardError: .inherit)
        let termination = try await child.wait(timeout: .seconds(3600))
        return termination.exitCode ?? 128 + (termination.signal ?? 0)
    }
}
