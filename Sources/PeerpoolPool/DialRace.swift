import PeerpoolQUIC

/// Dials every path to a peer at once and keeps the first connection that completes its
/// handshake, as happy eyeballs does: a dead address costs nothing when another works, instead of
/// a full connect timeout before the next is tried. Losers still in flight are cancelled; one that
/// completes anyway (both finished in the same instant) is closed, so no connection leaks.
///
/// When every path fails, the error of the first path is thrown (the best-ranked one: usually
/// the most telling), unless a later one is more specific than a timeout.
enum DialRace {
    static func first(_ paths: [@Sendable () async throws -> QUICConnection]) async throws -> QUICConnection {
        precondition(!paths.isEmpty, "DialRace needs at least one path")
        if paths.count == 1 { return try await paths[0]() }
        return try await withThrowingTaskGroup(of: (Int, Result<QUICConnection, any Error>).self) { group in
            for (index, path) in paths.enumerated() {
                group.addTask {
                    do { return (index, .success(try await path())) } catch { return (index, .failure(error)) }
                }
            }
            var errors: [(Int, any Error)] = []
            var winner: QUICConnection?
            while let (index, result) = try await group.next() {
                switch result {
                case .success(let connection) where winner == nil:
                    winner = connection
                    group.cancelAll()
                case .success(let late):
                    await late.close(code: 0, reason: "another path to this peer connected first")
                case .failure(let error):
                    errors.append((index, error))
                }
            }
            if let winner { return winner }
            throw Self.telling(errors)
        }
    }

    /// The best-ranked path's error, preferring anything over a handshake timeout.
    private static func telling(_ errors: [(Int, any Error)]) -> any Error {
        let ranked = errors.sorted { $0.0 < $1.0 }.map(\.1)
        return ranked.first { ($0 as? QUICError)?.code != .handshakeTimeout } ?? ranked[0]
    }
}
