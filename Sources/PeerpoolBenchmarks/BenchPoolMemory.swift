import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Resident memory of a process, from /proc, and trimming our own heap before measuring it.
enum BenchPoolMemory {
    /// VmRSS of `pid` (nil: this process), KiB; nil where /proc is missing.
    static func residentKiB(pid: pid_t? = nil) -> Int? {
        let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
        guard let status = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return nil
    }

    /// Returns free heap pages to the kernel (glibc's `malloc_trim`), so that RSS counts what is
    /// in use rather than what an earlier phase freed. No-op where there is no `malloc_trim`.
    static func trimHeap() {
        _ = mallocTrim?(0)
    }

    /// `malloc_trim`, looked up at run time: the Glibc module does not import `<malloc.h>`.
    /// `RTLD_DEFAULT` is a null handle on glibc.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()
}
