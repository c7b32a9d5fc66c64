import Crypto
import PeerpoolIdentity

/// Which worker process owns a remote ID52: rendezvous (highest random weight) hashing.
///
/// Worker `i`'s score for a peer is the first 8 bytes, big-endian, of
/// SHA-256(the peer's 32-byte public key ‖ `i` as 4 bytes big-endian); the highest score wins,
/// the lower index on a tie. The result depends only on the key and the worker count, so it is
/// the same in every process, run and restart (Swift's `Hasher` is seeded per process and could
/// not be used). Going from N to N+1 workers moves only the peers the new worker now wins, about
/// 1/(N+1) of them; every other peer keeps its worker. This is version 1 of the mapping; a change
/// would be a wire-protocol version change, since clients may route by it.
public struct ShardMap: Sendable, Hashable {
    public let workerCount: Int

    public init(workerCount: Int) {
        precondition(workerCount > 0, "a shard map needs at least one worker")
        self.workerCount = workerCount
    }

    /// The worker index (0 ..< workerCount) that owns `peer`.
    public func worker(for peer: ID52) -> Int {
        var best = 0
        var bestScore: UInt64 = 0
        for index in 0..<workerCount {
            let score = Self.score(peer, index)
            if index == 0 || score > bestScore {
                best = index
                bestScore = score
            }
        }
        return best
    }

    static func score(_ peer: ID52, _ worker: Int) -> UInt64 {
        var hasher = SHA256()
        hasher.update(data: peer.publicKeyBytes)
        let index = UInt32(truncatingIfNeeded: worker).bigEndian
        withUnsafeBytes(of: index) { hasher.update(bufferPointer: $0) }
        return hasher.finalize().withUnsafeBytes { digest in
            digest.prefix(8).reduce(0) { ($0 << 8) | UInt64($1) }
        }
    }
}
