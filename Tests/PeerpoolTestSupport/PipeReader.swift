import Foundation

/// Reads `handle` to EOF on a thread of its own, passing each chunk to `received` and calling
/// `atEnd` once after the last, then closes it. Blocking reads stay off the cooperative pool: it
/// has only as many threads as cores, and two blocking reads would stall every test in the
/// process.
func readToEnd(
    _ handle: FileHandle, received: @escaping @Sendable (ArraySlice<UInt8>) -> Void, atEnd: @escaping @Sendable () -> Void
) {
    let thread = Thread {
        // read(2), not FileHandle.read(upToCount:): that one waits for the full count or EOF.
        let descriptor = handle.fileDescriptor
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            received(chunk[..<count])
        }
        try? handle.close()
        atEnd()
    }
    thread.start()
}
