import Foundation
import PeerpoolSupervisor
import PeerpoolTestSupport
import Testing

/// A supervisor that has shut down answers calls with an error instead of leaving them waiting.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SupervisorShutdownTests {
    /// `status()` and `workerPIDs()` after shutdown used to wait forever on a reactor that
    /// dropped their work.
    @Test func statusAfterShutdown_throwsStopped_insteadOfHanging() async throws {
        let embedded = try await EmbeddedSupervisor.start(workers: 1)
        await embedded.stop()
        embedded.directory.remove()
        let supervisor = embedded.supervisor
        let outcome = try await within(SupervisorFixture.deadline, "status() after shutdown") { () -> String in
            do {
                _ = try await supervisor.status()
                return "answered"
            } catch let error as SupervisorError {
                return error.code.name
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome == "stopped")
        let pids = try await within(SupervisorFixture.deadline, "workerPIDs() after shutdown") { () -> String in
            do { _ = try await supervisor.workerPIDs(); return "answered" } catch let error as SupervisorError { return error.code.name } catch { return "\(error)" }
        }
        #expect(pids == "stopped")
        // A second shutdown returns too.
        #expect(try await within(SupervisorFixture.deadline, "a second shutdown()") { await supervisor.shutdown(); return true })
    }
}
