/// Whether `task` finishes within `timeout`. Does not wait for it beyond that (awaiting a task's
/// value inside a task group would: the group waits for its children).
public func completes<T: Sendable>(_ task: Task<T, any Error>, within timeout: Duration) async -> Bool {
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
