import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What one side of the transport benchmark measured: run times and the processes' peaks.
struct BenchFigures: Sendable {
    /// Bytes each run moved.
    var bytes: Int
    /// Like-for-like times, one per run: for ours connect + transfer, for the anchor the client
    /// process from spawn to exit.
    var fullRuns: [Duration] = []
    /// Transfer-only times: for ours request sent to last byte, for the anchor the client's wall
    /// time minus the median wall time of fetching a 1-byte file (start-up + handshake).
    var transferRuns: [Duration] = []
    /// The small-transfer runs (1 byte) that estimate start-up + handshake.
    var handshakeRuns: [Duration] = []
    /// Peak RSS of the downloading process, KiB.
    var clientPeakRSSKiB: Int?
    /// Peak RSS of the serving process, KiB.
    var serverPeakRSSKiB: Int?
    /// CPU seconds both processes spent over the measured (full-size) runs.
    var clientCPUSeconds: Double?
    var serverCPUSeconds: Double?

    init(bytes: Int) {
        self.bytes = bytes
    }

    /// 10^6 bytes per second for `duration`.
    func megabytesPerSecond(_ duration: Duration) -> Double {
        let seconds = duration.benchSeconds
        return seconds > 0 ? Double(bytes) / seconds / 1e6 : 0
    }

    /// Best and median MB/s of `runs`.
    func throughput(_ runs: [Duration]) -> (best: Double, median: Double) {
        let rates = runs.map(megabytesPerSecond).sorted()
        guard let best = rates.last else { return (0, 0) }
        let middle = rates.count / 2
        let median = rates.count % 2 == 1 ? rates[middle] : (rates[middle - 1] + rates[middle]) / 2
        return (best, median)
    }

    /// This process's peak RSS so far, KiB (ru_maxrss is KiB on Linux, bytes on Darwin).
    static func ownPeakRSSKiB() -> Int {
        var usage = rusage()
        getrusage(rusageSelf, &usage)
        #if canImport(Darwin)
        return Int(usage.ru_maxrss) / 1024
        #else
        return Int(usage.ru_maxrss)
        #endif
    }

    /// This process's user + system CPU seconds so far.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(rusageSelf, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}

#if canImport(Glibc)
/// Glibc imports RUSAGE_SELF as an enum case; Darwin as an Int32.
private let rusageSelf = __rusage_who_t(RUSAGE_SELF.rawValue)
#else
private let rusageSelf = RUSAGE_SELF
#endif

extension Duration {
    /// Prefixed so as not to collide with helpers other files of this module may add.
    var benchSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    var benchMilliseconds: Double { benchSeconds * 1000 }
}

/// Median of durations (mean of the middle two for an even count); zero for none.
func benchMedian(_ durations: [Duration]) -> Duration {
    let sorted = durations.sorted()
    guard !sorted.isEmpty else { return .zero }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
