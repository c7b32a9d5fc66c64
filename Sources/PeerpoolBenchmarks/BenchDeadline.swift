import Foundation
import PeerpoolCommandSupport

/// Runs `body`, failing with `.timedOut` (and cancelling it) if it takes longer than `timeout`.
///
/// `body` must honour cancellation for the deadline to hold: QUIC reads and writes do.
func withBenchDeadline<T: Sendable>(
    _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw CommandError(.timedOut, "\(what) did not finish within \(timeout)")
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else {
            throw CommandError(.timedOut, "\(what) produced no result")
        }
        return first
    }
}
