/// `operation`'s result, or nil when it takes longer than `timeout`. It is then cancelled but
/// not waited for (like `completes`): an operation that ignores cancellation cannot turn a
/// timeout into a hang.
public func withDeadline<T: Sendable>(
    _ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T? {
    do {
        return try await within(timeout, "the operation", operation)
    } catch is TimedOut {
        return nil
    }
}

/// `operation`'s result, or a thrown `TimedOut` naming `what` when it takes longer than
/// `timeout`. It is then cancelled but not waited for (like `completes`).
public func within<T: Sendable>(
    _ timeout: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let task = Task<T, any Error> { try await operation() }
    return try await withTaskCancellationHandler {
        guard await completes(task, within: timeout) else {
            task.cancel()
            throw TimedOut(what: what, timeout: timeout)
        }
        return try await task.value
    } onCancel: {
        task.cancel()
    }
}

/// What `within` throws: `what` did not finish within `timeout`.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public let timeout: Duration

    public var description: String { "\(what) did not finish within \(timeout)" }
}
