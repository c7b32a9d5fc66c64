import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `peerpool serve` as operators and applications meet it: a child process with its own worker
/// processes, killed, drained with SIGTERM, asked for its status by `peerpool status`, and used
/// from the Python example client.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SupervisorProcessTests {
    @Test func sigkillSupervisor_failsTheClientsRequestsWithSupervisorLost_andTheWorkersDie() async throws {
        let keys = [SecretKey.generate()]
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        let serve = try await ServeProcess(workers: 2)
        let (client, workerPIDs) = try await serve.connect(configuration: .init(requestTimeout: .seconds(60)))
        let workers = workerPIDs.map(ProcessIdentity.init)
        do {
            let status = try await client.status()
            #expect(status.pid == serve.child.pid)
            #expect(workerPIDs.count == 2 && workers.allSatisfy { $0.isAlive })

            let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(keys[0].id52))
            #expect(try await stream.echoLine("hello\n") == "hello\n")
            // Requests that wait (a silent peer, 60 s timeouts) on both shards.
            let waiting = (0..<20).map { _ in
                let peer = silent.peer(SecretKey.generate().id52)
                return Task { await outcome { _ = try await client.getStream(ProtocolHeader(.ping), to: peer, timeout: .seconds(60)) } }
            }
            try await SupervisorFixture.waitUntil("20 requests to wait in peerpool serve") {
                try await client.status().requests == 20
            }

            serve.child.signal(SIGKILL)

            // Promptly: long before the requests' own 60 s timeouts.
            let outcomes = try await values(of: waiting, within: .seconds(20), "the waiting requests")
            #expect(tally(outcomes.map(\.code)) == ["supervisor_lost": 20], "\(tally(outcomes.map(\.code)))")
            let streamFailure = try await within(.seconds(20), "the open stream to fail") {
                await outcome { _ = try await stream.read() }
            }
            #expect(streamFailure.code == "supervisor_lost", "\(streamFailure)")
            #expect(await serve.child.exit(within: SupervisorFixture.deadline)?.status == -SIGKILL)

            // The workers follow their supervisor (parent-death signal, end of standard input).
            let survivors = await ProcessTable.waitUntilGone(workers, within: .seconds(10))
            #expect(survivors.isEmpty, "workers \(survivors) outlived their SIGKILLed supervisor (killed now); log: \(serve.log)")
        } catch {
            await client.close()
            await serve.kill()
            await ProcessTable.waitUntilGone(workers, within: .seconds(10))
            throw error
        }
        await client.close()
        await serve.kill()
        await listener.stop()
        withExtendedLifetime(silent) {}
    }

    @Test func sigterm_drains_aStreamOpenDuringTheDrainFinishes_thenServeExitsZero_andTheWorkersAreGone() async throws {
        let keys = [SecretKey.generate()]
        let listener = try await PeerListener(keys: keys)
        let peer = listener.peer(keys[0].id52)
        // A long grace period: exiting well before it shows the drain ended because the stream did.
        let grace: Duration = .seconds(40)
        let serve = try await ServeProcess(workers: 2, yaml: "shutdown_grace_period: 40\n")
        let (client, workerPIDs) = try await serve.connect()
        let workers = workerPIDs.map(ProcessIdentity.init)
        do {
            let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: peer)
            #expect(try await stream.echoLine("before the drain\n") == "before the drain\n")

            serve.child.signal(SIGTERM)

            // Draining: new requests are refused (a ping that still gets through is finished).
            let refusal = try await SupervisorFixture.waitForValue("peerpool serve to refuse new requests") { () async -> (code: String, message: String)? in
                let attempt = await outcome {
                    let ping = try await client.getStream(ProtocolHeader(.ping), to: peer)
                    _ = try await ping.readToEnd(limit: 64)
                    await ping.reset(code: 0)
                }
                return attempt.code == "succeeded" ? nil : attempt
            }
            #expect(refusal.code == "shutting_down", "\(refusal)")

            // The stream opened before SIGTERM works on and finishes normally.
            let drainStarted = ContinuousClock.now
            #expect(try await stream.echoLine("during the drain\n") == "during the drain\n")
            try await stream.finish()
            #expect(try await stream.readToEnd(limit: 1024).readableBytes == 0)

            let status = await serve.child.exit(within: grace + .seconds(20))?.status
            #expect(status == 0, "peerpool serve should exit 0 after draining; log: \(serve.log)")
            #expect(ContinuousClock.now - drainStarted < grace, "serve waited out its grace period instead of ending with the last stream")
            let survivors = await ProcessTable.waitUntilGone(workers, within: .seconds(10))
            #expect(survivors.isEmpty, "workers \(survivors) outlived a drained supervisor (killed now)")
            // Nothing left behind that looks like a running supervisor.
            let left = try FileManager.default.contentsOfDirectory(atPath: serve.directory.path).filter { $0.hasSuffix(".sock") }
            #expect(left.isEmpty, "socket files left after the supervisor exited: \(left)")
        } catch {
            await client.close()
            await serve.kill()
            await ProcessTable.waitUntilGone(workers, within: .seconds(10))
            throw error
        }
        await client.close()
        await serve.kill()
        await listener.stop()
    }

    @Test func statusCommand_tableAndJSON_showEveryWorkerRunning() async throws {
        let serve = try await ServeProcess(workers: 2)
        let (client, workerPIDs) = try await serve.connect()
        let workers = workerPIDs.map(ProcessIdentity.init)
        do {
            let table = try await runProgram(peerpoolExecutable.path, ["status", "--runtime-dir", serve.directory.path])
            #expect(table.status == 0, "\(table)")
            let lines = table.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("supervisor pid \(serve.child.pid)") == true, "\(table)")
            for (index, pid) in workerPIDs.enumerated() {
                let row = lines.first { $0.split(separator: " ").first == "\(index)" }?.split(separator: " ").map(String.init)
                #expect(row?.count == 8, "\(table)")
                #expect(row?[1] == "running", "worker \(index): \(table)")
                #expect(row?[2] == "\(pid)", "worker \(index): \(table)")
            }

            let json = try await runProgram(peerpoolExecutable.path, ["status", "--runtime-dir", serve.directory.path, "--json"])
            #expect(json.status == 0, "\(json)")
            let status = try JSONDecoder().decode(SupervisorStatus.self, from: Data(json.stdout.utf8))
            #expect(status.pid == serve.child.pid)
            #expect(status.workers.map(\.index) == [0, 1])
            #expect(status.workers.map(\.pid) == workerPIDs)
            #expect(status.workers.allSatisfy { $0.state == "running" })

            // No supervisor there: a clear error, not a hang.
            let empty = try ScratchDirectory()
            defer { empty.remove() }
            // A long --timeout: the missing socket is seen at once, not waited for.
            let missing = try await runProgram(peerpoolExecutable.path, ["status", "--runtime-dir", empty.path, "--timeout", "600"])
            #expect(missing.status == 1, "\(missing)")
            #expect(missing.stderr.contains("no_supervisor: no supervisor serves \(empty.path)"), "\(missing)")
        } catch {
            await client.close()
            await serve.kill()
            throw error
        }
        await client.close()
        serve.child.signal(SIGTERM)
        #expect(await serve.child.exit(within: SupervisorFixture.deadline)?.status == 0, "log: \(serve.log)")
        #expect(await ProcessTable.waitUntilGone(workers, within: .seconds(10)).isEmpty)
        await serve.kill()
    }

    @Test func pythonEchoExample_echoesTheLine_andPrintsTheStatus() async throws {
        try SupervisorInputTests.requirePythonZMQ()
        let keys = [SecretKey.generate()]
        let listener = try await PeerListener(keys: keys)
        let serve = try await ServeProcess(workers: 2)
        let (client, workerPIDs) = try await serve.connect()
        let workers = workerPIDs.map(ProcessIdentity.init)
        do {
            let script = PythonInterop.repositoryRoot.appendingPathComponent("examples/python/echo.py").path
            let echo = try await runProgram("/usr/bin/python3", [
                script, "--endpoint", serve.endpoint, "--peer", "\(keys[0].id52)@\(listener.hostPort)", "--line", "hello supervisor",
            ])
            #expect(echo.status == 0, "\(echo)")
            #expect(echo.stdout == "hello supervisor\n", "\(echo)")

            let status = try await runProgram("/usr/bin/python3", [script, "--endpoint", serve.endpoint, "--status"])
            #expect(status.status == 0, "\(status)")
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            let workers = object?["workers"] as? [[String: Any]] ?? []
            #expect(workers.count == 2, "\(status)")
            #expect(workers.compactMap { ($0["pid"] as? NSNumber)?.int32Value } == workerPIDs, "\(status)")
            #expect(workers.allSatisfy { $0["state"] as? String == "running" }, "\(status)")
            #expect((object?["pid"] as? NSNumber)?.int32Value == serve.child.pid, "\(status)")
        } catch {
            await client.close()
            await serve.kill()
            throw error
        }
        await client.close()
        await serve.kill()
        await ProcessTable.waitUntilGone(workers, within: .seconds(10))
        await listener.stop()
    }

    /// The Python example client watches its socket with a monitor: a request waiting when the
    /// supervisor dies fails with `supervisor_lost` at once, not at its 30 s timeout.
    @Test func pythonClient_seesSupervisorLost_soonAfterTheSupervisorDies() async throws {
        try SupervisorInputTests.requirePythonZMQ()
        let serve = try await ServeProcess(workers: 1)
        let (client, workerPIDs) = try await serve.connect()
        await client.close()
        let examples = PythonInterop.repositoryRoot.appendingPathComponent("examples/python").path
        let program = """
            import sys, time
            sys.path.insert(0, sys.argv[1])
            from peerpool_client import Client, PeerpoolError
            c = Client(sys.argv[2], timeout=30)
            c.status()
            print("READY", flush=True)
            for _ in range(10000):
                try:
                    c.status()
                except PeerpoolError as e:
                    print(e.code, flush=True)
                    break
                time.sleep(0.01)
            """
        let python = try TestChild(.program("/usr/bin/python3", ["-c", program, examples, serve.endpoint]))
        let ready = try? await python.nextLine(within: SupervisorFixture.deadline)
        #expect(ready == "READY")
        serve.child.signal(SIGKILL)
        let killed = ContinuousClock.now
        let line = try? await python.nextLine(within: .seconds(20))
        let took = ContinuousClock.now - killed
        #expect(line == "supervisor_lost", "the Python client reported \(line ?? "nothing") \(took) after the supervisor died")
        #expect(took < .seconds(5), "supervisor_lost took \(took)")
        await python.kill()
        await serve.kill()
        await ProcessTable.waitUntilGone(workerPIDs.map(ProcessIdentity.init), within: .seconds(10))
    }
}
