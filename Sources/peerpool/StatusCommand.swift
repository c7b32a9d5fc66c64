import ArgumentParser
import Foundation
import PeerpoolCommandSupport
import PeerpoolSupervisor
import PeerpoolWire

/// `peerpool status`: what a running supervisor's workers are doing.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running supervisor's workers: pid, uptime, restarts, connections, streams, requests."
    )

    @Option(name: .customLong("runtime-dir"), help: ArgumentHelp("The supervisor's runtime directory (default: as `serve`).", valueName: "path"))
    var runtimeDirectory: String?

    @Option(help: ArgumentHelp("YAML configuration file to take the runtime directory from.", valueName: "path"))
    var config: String?

    @Flag(help: "Print the STATUS_REPLY JSON instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("Give up after this many seconds.", valueName: "seconds"))
    var timeout: Double = 5

    func validate() throws {
        guard timeout >= 0.001, timeout <= 86_400 else {
            throw ValidationError("--timeout must be between 0.001 and 86400 seconds (a day)")
        }
    }

    func run() async throws {
        var configuration = try config.map { try SupervisorConfiguration(contentsOfFile: $0) } ?? SupervisorConfiguration()
        if let runtimeDirectory { configuration.runtimeDirectory = runtimeDirectory }
        let endpoint = RuntimeDirectory(path: configuration.runtimeDirectory).frontendEndpoint
        // libzmq would wait the whole timeout for a socket that will never appear.
        let socketPath = String(endpoint.dropFirst("ipc://".count))
        guard FileManager.default.fileExists(atPath: socketPath) else {
            throw CommandError(
                .noSupervisor,
                "no supervisor serves \(configuration.runtimeDirectory): \(socketPath) does not exist (give `serve`'s --runtime-dir or --config)")
        }
        var clientConfiguration = SupervisorClient.Configuration()
        clientConfiguration.connectTimeout = .milliseconds(Int(timeout * 1000))
        let client = try await SupervisorClient.connect(to: endpoint, configuration: clientConfiguration)
        let status: SupervisorStatus
        do {
            status = try await client.status()
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        print(Self.render(status))
    }

    static func render(_ status: SupervisorStatus) -> String {
        var lines = [
            "supervisor pid \(status.pid), up \(format(status.uptimeSeconds)), \(status.clients) clients, \(status.streams) streams, \(status.requests) requests waiting"
        ]
        let header = ["worker", "state", "pid", "uptime", "restarts", "connections", "streams", "requests"]
        var rows = [header]
        for worker in status.workers {
            rows.append([
                String(worker.index), worker.state, worker.pid.map(String.init) ?? "-",
                worker.uptimeSeconds.map(format) ?? "-", String(worker.restarts), String(worker.connections),
                String(worker.streams), String(worker.requests),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append(row.enumerated().map { column, text in
                column < 2 ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - text.count) + text
            }.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }

    static func format(_ seconds: Double) -> String {
        if seconds < 120 { return String(format: "%.1fs", seconds) }
        if seconds < 7200 { return String(format: "%.0fm", seconds / 60) }
        return String(format: "%.1fh", seconds / 3600)
    }
}
