/// Latency samples of one benchmark worker, bounded: past `capacity` it keeps a uniform random
/// sample (reservoir sampling), so a long or fast run cannot grow memory without bound.
///
/// No histogram package is a dependency of peerpool, so percentiles come from sorting the
/// samples; at a few hundred thousand samples that takes milliseconds.
struct BenchPoolLatencies: Sendable {
    private(set) var samples: [Duration] = []
    /// Samples offered so far, kept or not.
    private(set) var seen = 0
    let capacity: Int
    private var random: SplitMix64

    init(capacity: Int, seed: UInt64) {
        self.capacity = max(1, capacity)
        self.random = SplitMix64(seed: seed)
        samples.reserveCapacity(min(self.capacity, 4096))
    }

    mutating func record(_ latency: Duration) {
        seen += 1
        if samples.count < capacity {
            samples.append(latency)
            return
        }
        let slot = Int(random.next() % UInt64(seen))
        if slot < capacity { samples[slot] = latency }
    }

    /// Every worker's samples together, sorted, for `percentile`.
    static func merged(_ parts: [BenchPoolLatencies]) -> [Duration] {
        parts.flatMap(\.samples).sorted()
    }

    /// Nearest-rank percentile (`fraction` 0.5 for p50) of sorted samples; nil for none.
    static func percentile(_ fraction: Double, of sorted: [Duration]) -> Duration? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    /// A small, fast, seedable generator for the sampling decisions (nothing secret).
    private struct SplitMix64: Sendable {
        private var state: UInt64

        init(seed: UInt64) {
            state = seed
        }

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
