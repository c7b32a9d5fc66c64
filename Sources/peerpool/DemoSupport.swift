import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private runtime directory for the demo's supervisor (mkdtemp makes it 0700), removed at the
/// end, so the demo never meets a real supervisor's sockets.
struct DemoRuntimeDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/peerpool-demo-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
