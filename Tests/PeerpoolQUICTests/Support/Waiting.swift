import Foundation

/// Whether `task` finishes within `timeout`. Does not wait for it beyond that (awaiting a task's
/// value inside a task group would: the group waits for its children).
func completes<T: Sendable>(_ task: Task<T, any Error>, within timeout: Duration) async -> Bool {
    let (signal, continuation) = AsyncStream<Void>.makeStream()
    Task {
        _ = try? await task.value
        continuation.yield()
        continuation.finish()
    }
    return await withTaskGroup(of: Bool.self) { group in
        group.addTask {
            for await _ in signal { return true }
            return false
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return false
        }
        let first = await group.next() ?? false
        group.cancelAll()
        return first
    }
}

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
