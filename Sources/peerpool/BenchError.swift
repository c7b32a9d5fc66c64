import Foundation

/// Why a benchmark could not run: a stable `code` to match on and a message saying what to do.
///
/// A benchmark that ran but missed its bar is not an error (it prints FAIL and exits 0); these
/// are for a missing tool, a child that did not answer in time, or figures that cannot be trusted
/// (a download of the wrong size). ArgumentParser prints the message and exits non-zero.
struct BenchError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// Open set of error kinds, as static members.
    struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }
        var description: String { name }

        /// A program the benchmark runs is not installed.
        static let missingTool = Code("missing_tool")
        /// posix_spawn, pipe or a file operation failed.
        static let spawnFailed = Code("spawn_failed")
        /// A child or a transfer did not answer within its deadline (the child was killed).
        static let timedOut = Code("timed_out")
        /// A child exited with a failure status or said something we do not understand.
        static let childFailed = Code("child_failed")
        /// A transfer delivered the wrong number of bytes.
        static let verificationFailed = Code("verification_failed")
    }

    let code: Code
    let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    var description: String { "\(code): \(message)" }
    var errorDescription: String? { description }

    static func == (lhs: BenchError, rhs: BenchError) -> Bool { lhs.code == rhs.code }
}

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
            throw BenchError(.timedOut, "\(what) did not finish within \(timeout)")
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else {
            throw BenchError(.timedOut, "\(what) produced no result")
        }
        return first
    }
}
