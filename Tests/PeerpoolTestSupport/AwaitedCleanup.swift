/// Runs `body`, then awaits `cleanup` whether `body` returned or threw, and only then returns
/// `body`'s result or rethrows its error. A test's pool, endpoint or peer is thus shut down
/// within the test: the next test never meets it still closing, and a cleanup that hangs or
/// records an issue does so inside the test it belongs to. (A `Task` started in a `defer` is
/// awaited by nobody.)
///
/// Runs on the caller's isolation, so `body` and `cleanup` may capture non-Sendable values.
///
/// A body closure whose only `try`s stand inside `#expect(…)` must say `throws` itself
/// (`{ pool throws in … }`): Swift infers a closure's `throws` from the `try`s outside macro
/// arguments, and these helpers' closure types cannot supply it.
public func withCleanup<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws -> T,
    cleanup: () async -> Void
) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}
