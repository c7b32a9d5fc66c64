/// Starts `command`, runs `body` with the child, then kills it (SIGKILL) if it still runs and
/// awaits its end, whether `body` returned or threw: like `withCleanup`, the child is gone
/// within the test that started it, even a cancelled one.
public func withTestChild<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ command: TestChild.Command,
    _ body: (TestChild) async throws -> T
) async throws -> T {
    let child = try TestChild(command)
    return try await withCleanup(isolation: isolation) {
        try await body(child)
    } cleanup: {
        await child.kill()
    }
}
