import PeerpoolIdentity
import PeerpoolSupervisor
import Testing

struct ShardMapTests {
    /// 10,000 well-spread but fixed keys (an ed25519 public key is a hash of its seed), so the
    /// figures below are the same on every run.
    private static let peers: [ID52] = (0..<10_000).map { index in
        var seed = [UInt8](repeating: 0x5a, count: 32)
        withUnsafeBytes(of: UInt32(index).bigEndian) { seed.replaceSubrange(0..<4, with: $0) }
        return try! SecretKey(seed: seed).id52
    }

    @Test func mapping_isFixed_acrossProcessesAndRuns() throws {
        // Pinned values: a change here changes where every deployed client routes.
        let vector = try ID52(parsing: "i66fo538lfl5ombdf6tcdbrabp4hmp9asv7nrffuc2im13ct4q60")
        let owners = (1...8).map { ShardMap(workerCount: $0).worker(for: vector) }
        #expect(owners == Self.pinnedOwners, "\(owners)")
        // Keys from fixed seeds, 16 workers.
        let seeded = try (1...6).map { ShardMap(workerCount: 16).worker(for: try SecretKey(seed: [UInt8](repeating: UInt8($0), count: 32)).id52) }
        #expect(seeded == Self.pinnedSeeded, "\(seeded)")
    }

    static let pinnedSeeded: [Int] = [14, 2, 12, 15, 6, 1]

    /// Computed once with this implementation and pinned.
    static let pinnedOwners: [Int] = [0, 0, 2, 2, 4, 4, 4, 4]

    @Test(arguments: [2, 4, 8])
    func tenThousandRandomPeers_spreadWithinAFewPercentOfEven(_ workers: Int) {
        let map = ShardMap(workerCount: workers)
        var counts = [Int](repeating: 0, count: workers)
        for peer in Self.peers { counts[map.worker(for: peer)] += 1 }
        let even = Double(Self.peers.count) / Double(workers)
        // Sampling noise alone spreads a fair hash's buckets by sigma = sqrt((1 - 1/N) / even)
        // (2.6% at 8 workers); a biased mapping lands well outside three of those.
        let tolerance = 3 * ((1 - 1 / Double(workers)) / even).squareRoot()
        for count in counts {
            #expect(abs(Double(count) - even) / even < tolerance, "\(counts), tolerance \(tolerance)")
        }
    }

    @Test(arguments: [2, 4, 7])
    func addingAWorker_movesAboutOneInNPlusOne_andOnlyToTheNewWorker(_ workers: Int) {
        let before = ShardMap(workerCount: workers)
        let after = ShardMap(workerCount: workers + 1)
        var moved = 0
        for peer in Self.peers {
            let old = before.worker(for: peer)
            let new = after.worker(for: peer)
            if old != new {
                moved += 1
                #expect(new == workers, "a peer moved between old workers")
            }
        }
        let expected = Double(Self.peers.count) / Double(workers + 1)
        #expect(abs(Double(moved) - expected) / expected < 0.1, "moved \(moved), expected about \(Int(expected))")
    }
}
