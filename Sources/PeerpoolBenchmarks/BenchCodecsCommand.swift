import ArgumentParser
import Foundation
import PeerpoolIdentity
import PeerpoolProtocol
import PeerpoolSupervisor
import PeerpoolWire

/// `peerpool-bench codecs`: what the per-open decoding steps cost in this process, each beside
/// the Foundation way of doing the same (the anchor) where there is one.
///
/// In-process and single-threaded: thread CPU time per call is the figure (wall time on a shared
/// machine includes other processes' turns). Every OPEN is read by the supervisor and again by
/// the worker, so these costs are paid twice per stream through `peerpool serve`.
struct BenchCodecsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codecs",
        abstract: "Per-call CPU cost of the OPEN body, JSON, ID52, host:port, shard decoding and reactor timers, beside an anchor.",
        discussion: """
            Each case runs --iterations calls in blocks, alternating with its anchor, and prints \
            the median block's CPU nanoseconds per call of this thread (CLOCK_THREAD_CPUTIME_ID) \
            and the ratio anchor / ours (above 1: ours is cheaper). Exits 0.
            """
    )

    @Option(help: "Calls per case (split in 10 alternating blocks).")
    var iterations = 20_000

    func run() throws {
        guard (10...10_000_000).contains(iterations) else {
            throw ValidationError("--iterations must be 10...10000000")
        }
        let remote = SecretKey.generate().id52
        let request = OpenRequest(
            remote: remote, address: "127.0.0.1:4433", header: ProtocolHeader(.generic(.string("echo")), extra: "x"),
            timeout: .seconds(10), window: 262_144)
        let body = request.encoded()
        let header = Array(#"{"Generic":{"list":[1.5,null,"a\"b"],"ok":true,"type":"custom","version":1}}"#.utf8)
        let text = remote.description
        let shards = ShardMap(workerCount: 8)
        let wire = WireHeader(.open, id: 42).bytes
        var sink = 0
        // A worker with 10,000 opens pending: one more armed and answered (its timer cancelled).
        var timers = ReactorTimerQueue<Int>()
        var sortedTimers = SortedTimerArray()
        let now = ContinuousClock.now
        for index in 0..<10_000 {
            _ = timers.schedule(at: now + .milliseconds(index), index)
            _ = sortedTimers.schedule(at: now + .milliseconds(index))
        }
        var nextDeadline = 0

        print("== codecs: \(iterations) calls per case, median of 10 blocks, CPU ns per call on this thread")
        print("   OPEN body: \(body.count) bytes: \(String(decoding: body, as: UTF8.self))")
        let cases: [(String, () -> Void, (() -> Void)?)] = [
            ("OPEN body → OpenRequest (vs JSONSerialization of it)", {
                sink &+= (try? OpenRequest(decoding: body))?.window ?? 0
            }, {
                sink &+= ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])?.count ?? 0
            }),
            ("protocol JSON → JSONValue (vs JSONSerialization)", {
                sink &+= header.withUnsafeBytes { (try? JSONValue(parsingUTF8: $0)) == nil ? 0 : 1 }
            }, {
                sink &+= (try? JSONSerialization.jsonObject(with: Data(header))) == nil ? 0 : 1
            }),
            ("protocol JSON → JSONValue (vs JSONDecoder, the old way)", {
                sink &+= header.withUnsafeBytes { (try? JSONValue(parsingUTF8: $0)) == nil ? 0 : 1 }
            }, {
                sink &+= (try? JSONDecoder().decode(JSONValue.self, from: Data(header))) == nil ? 0 : 1
            }),
            ("OpenRequest → OPEN body (vs JSONSerialization)", {
                sink &+= request.encoded().count
            }, {
                let object: [String: Any] = ["remote": text, "protocol": ["Generic": "echo"], "address": "127.0.0.1:4433", "extra": "x", "timeout_ms": 10_000, "window": 262_144]
                sink &+= (try? JSONSerialization.data(withJSONObject: object, options: .sortedKeys))?.count ?? 0
            }),
            ("ID52 text → ID52, seen before", {
                sink &+= (try? ID52(parsing: text))?.publicKeyBytes.count ?? 0
            }, nil),
            ("host:port → SocketAddress", {
                sink &+= PeerAddress.socketAddress(hostPort: "127.0.0.1:4433") == nil ? 0 : 1
            }, nil),
            ("ShardMap.worker(for:), 8 workers", {
                sink &+= shards.worker(for: remote)
            }, nil),
            ("reactor timer armed + cancelled, 10,000 pending (vs a sorted array, the old way)", {
                nextDeadline = (nextDeadline + 7_919) % 10_000
                timers.cancel(timers.schedule(at: now + .milliseconds(nextDeadline), 0))
            }, {
                nextDeadline = (nextDeadline + 7_919) % 10_000
                sortedTimers.cancel(sortedTimers.schedule(at: now + .milliseconds(nextDeadline)))
            }),
            ("wire header decode", {
                sink &+= wire.withUnsafeBytes { (try? WireHeader(decoding: $0))?.id ?? 0 }.hashValue & 1
            }, nil),
        ]
        for (name, ours, anchor) in cases {
            let (oursNanos, anchorNanos) = Self.measure(iterations, ours, anchor)
            let label = name.padding(toLength: 80, withPad: " ", startingAt: 0)
            if let anchorNanos {
                print("   \(label) " + String(format: "%8.0f ns   anchor %8.0f ns   anchor / ours %.2f", oursNanos, anchorNanos, anchorNanos / oursNanos))
            } else {
                print("   \(label) " + String(format: "%8.0f ns", oursNanos))
            }
        }
        if sink == 42 { print("") }
    }

    /// Median-block CPU ns per call of `ours` and, alternating block by block, of `anchor`.
    static func measure(_ iterations: Int, _ ours: () -> Void, _ anchor: (() -> Void)?) -> (Double, Double?) {
        let blocks = 10
        let perBlock = max(1, iterations / blocks)
        for _ in 0..<min(perBlock, 1000) {  // warm caches and the ID52 table
            ours()
            anchor?()
        }
        var oursBlocks: [Double] = []
        var anchorBlocks: [Double] = []
        for _ in 0..<blocks {
            oursBlocks.append(cpuNanos(perBlock, ours))
            if let anchor { anchorBlocks.append(cpuNanos(perBlock, anchor)) }
        }
        return (median(oursBlocks), anchor == nil ? nil : median(anchorBlocks))
    }

    private static func cpuNanos(_ count: Int, _ body: () -> Void) -> Double {
        let start = threadCPUNanos()
        for _ in 0..<count { body() }
        return Double(threadCPUNanos() - start) / Double(count)
    }

    private static func threadCPUNanos() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}

/// The reactor's timers before `ReactorTimerQueue`: kept sorted by deadline, O(n) to arm and to
/// cancel. The anchor of the timer case.
private struct SortedTimerArray {
    private var timers: [(deadline: ContinuousClock.Instant, id: UInt64)] = []
    private var lastID: UInt64 = 0

    mutating func schedule(at deadline: ContinuousClock.Instant) -> UInt64 {
        lastID += 1
        let index = timers.firstIndex { $0.deadline > deadline } ?? timers.endIndex
        timers.insert((deadline, lastID), at: index)
        return lastID
    }

    mutating func cancel(_ id: UInt64) {
        timers.removeAll { $0.id == id }
    }
}
