import Foundation
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
