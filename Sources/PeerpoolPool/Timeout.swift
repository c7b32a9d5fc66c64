/// Runs `operation`, and cancels it and throws `error()` if it takes longer than `timeout`.
/// `operation` must honour cancellation (every peerpool wait does), or this waits for it.
func withTimeout<T: Sendable>(
    _ timeout: Duration, _ error: @escaping @Sendable () -> any Error, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw error()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
