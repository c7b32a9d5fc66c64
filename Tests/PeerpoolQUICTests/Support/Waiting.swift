import Foundation

/// The result of `operation`, or nil if it did not finish within `timeout` (it is then
/// cancelled, so `operation` must honour cancellation).
func withDeadline<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// A counter shared between a task and the test.
actor Counter {
    private(set) var value = 0
    func add(_ n: Int) { value += n }
}
