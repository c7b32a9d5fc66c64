import Foundation

/// Reads `handle` to EOF on a thread of its own (blocking reads stay off the cooperative pool),
/// calling `line` for each line, without its newline, and `atEnd` once after the last. A partial
/// line longer than `limit` bytes is dropped, so a runaway child cannot fill memory.
public func readLines(
    from handle: FileHandle, limit: Int, line: @escaping @Sendable (String) -> Void,
    atEnd: @escaping @Sendable () -> Void
) {
    let thread = Thread {
        // read(2), not FileHandle.read(upToCount:): that one waits for the full count or EOF.
        let descriptor = handle.fileDescriptor
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            pending += chunk[..<count]
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                line(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
            if pending.count > limit { pending.removeAll() }
        }
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        try? handle.close()
        atEnd()
    }
    thread.start()
}

/// The first `count` lines `handle` delivers (fewer if it reaches EOF first), read on a thread
/// of their own (`readLines`), so that a child slow to start blocks no cooperative thread: with
/// only as many of those as cores, two blocking reads would stall every test in the process.
/// Later lines are read and dropped until EOF. Nil after `timeout`.
public func firstLines(of handle: FileHandle, count: Int, within timeout: Duration) async -> [String]? {
    let (arriving, continuation) = AsyncStream<String>.makeStream()
    readLines(from: handle, limit: 1 << 20) { continuation.yield($0) } atEnd: { continuation.finish() }
    return await withTaskGroup(of: [String]?.self) { group in
        group.addTask {
            var lines: [String] = []
            for await line in arriving {
                lines.append(line)
                if lines.count == count { break }
            }
            return lines
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
