import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// CPU time and context switches of the processes in a `bench supervisor` measurement: this one
/// (the callers, the client's thread and the embedded supervisor), the supervisor's workers and
/// the listener child.
///
/// Context switches count how often threads went to sleep or were preempted: on the supervisor
/// path every hop between threads or processes is one or more, so they show where wake-ups,
/// not work, cost time. This process's figures come from getrusage (all threads, even ended
/// ones); other processes' from /proc (their current threads).
struct BenchUsage: Sendable {
    struct Part: Sendable {
        var cpuSeconds = 0.0
        var switches = 0

        static func - (a: Part, b: Part) -> Part {
            Part(cpuSeconds: a.cpuSeconds - b.cpuSeconds, switches: a.switches - b.switches)
        }

        static func + (a: Part, b: Part) -> Part {
            Part(cpuSeconds: a.cpuSeconds + b.cpuSeconds, switches: a.switches + b.switches)
        }
    }

    var ours = Part()
    var workers = Part()
    var listener = Part()

    var total: Part { ours + workers + listener }

    /// Runs `body` and returns what this process, `workers` and `listener` used meanwhile. Our
    /// own counters are read innermost, so that reading the others' /proc files is not counted
    /// as ours. Measure with processes that stay up: one that exits counts as zero afterwards.
    static func measuring<T>(
        workers: [Int32], listener: Int32, _ body: () async throws -> T
    ) async rethrows -> (result: T, usage: BenchUsage) {
        let workersBefore = workers.reduce(Part()) { $0 + process($1) }
        let listenerBefore = process(listener)
        let oursBefore = own()
        let result = try await body()
        let oursAfter = own()
        let workersAfter = workers.reduce(Part()) { $0 + process($1) }
        let listenerAfter = process(listener)
        return (result, BenchUsage(ours: oursAfter - oursBefore, workers: workersAfter - workersBefore, listener: listenerAfter - listenerBefore))
    }

    static func + (a: BenchUsage, b: BenchUsage) -> BenchUsage {
        BenchUsage(ours: a.ours + b.ours, workers: a.workers + b.workers, listener: a.listener + b.listener)
    }

    private static func own() -> Part {
        var usage = rusage()
        getrusage(rusageSelf, &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return Part(cpuSeconds: cpu, switches: Int(usage.ru_nvcsw + usage.ru_nivcsw))
    }

    /// User plus system CPU (fields 14 and 15 of /proc/<pid>/stat, all threads) and the
    /// voluntary plus involuntary context switches of each of its threads.
    static func process(_ pid: Int32) -> Part {
        var part = Part()
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
                part.cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for task in tasks {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") where line.contains("ctxt_switches:") {
                if let value = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                    part.switches += value
                }
            }
        }
        return part
    }
}

#if canImport(Glibc)
/// Glibc imports RUSAGE_SELF as an enum case.
private let rusageSelf = __rusage_who_t(RUSAGE_SELF.rawValue)
#else
private let rusageSelf = RUSAGE_SELF
#endif
