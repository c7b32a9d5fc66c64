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
