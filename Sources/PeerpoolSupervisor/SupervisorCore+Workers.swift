import Foundation
import PeerpoolIdentity
import PeerpoolWire
import PeerpoolWorker

#if canImport(Glibc)
import Glibc
#endif

/// Worker processes: spawning them for the routing, and reporting their exits to it.
extension SupervisorCore {
    /// Starts shard `shard`'s worker as `generation` (the routing's `spawnWorker`); a failure to
    /// start is reported as an exit.
    func spawn(_ shard: Int, generation: Int) {
        let routingID = Array(WorkerSettings.routingID(index: shard, generation: generation).utf8)
        let settings = WorkerSettings(
            index: shard, generation: generation, backendEndpoint: runtime.backendEndpoint,
            supervisorPID: getpid(), heartbeatInterval: configuration.heartbeatInterval, secretKeys: identities,
            receiveWindow: configuration.defaultWindow, addressBook: configuration.addressBook, pool: configuration.pool,
            maxWindow: configuration.maxWindow, maxRequestTimeout: configuration.maxRequestTimeout,
            defaultRequestTimeout: configuration.defaultRequestTimeout
        )
        var input = (try? JSONEncoder().encode(settings)).map { [UInt8]($0) } ?? []
        input.append(UInt8(ascii: "\n"))
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess.spawn(
                executable: workerCommand[0],
                arguments: Array(workerCommand.dropFirst()) + ["--supervisor-pid", String(getpid()), "--log-level", logger.logLevel.rawValue],
                environment: Self.workerEnvironment(),
                standardInput: input
            )
        } catch {
            return perform(routing.workerExited(shard: shard, .spawnFailed("\(error)"), now: .now))
        }
        workers[shard] = WorkerProcess(process: process, routingID: routingID)
        shardsByRoutingID[routingID] = shard
        routing.workerStarted(shard: shard, pid: process.pid)
        reactor.watch(descriptor: process.exitDescriptor) { [self] in
            guard let termination = process.reap() else { return }
            reactor.unwatch(descriptor: process.exitDescriptor)
            process.close()
            workers[shard] = nil
            shardsByRoutingID[routingID] = nil
            perform(routing.workerExited(shard: shard, .terminated(termination), now: .now))
        }
    }

    /// Ours, plus `SWIFT_BACKTRACE=enable=no` unless the operator set SWIFT_BACKTRACE: the
    /// supervisor logs how a worker died (signal or exit status) and restarts it at once,
    /// while the runtime's crash reporter would hold the dying worker for seconds (long enough
    /// to be killed as hung) and print into our standard error.
    static func workerEnvironment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        // Workers get their keys on standard input only; a key `serve` took from the environment
        // stays out of theirs (and out of /proc/<pid>/environ).
        environment[SecretKey.defaultEnvironmentVariable] = nil
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }
        return environment
    }

    /// Graceful shutdown (see `SupervisorRoutingState.beginShutdown`).
    func beginShutdown() {
        perform(routing.beginShutdown(now: .now))
    }
}
