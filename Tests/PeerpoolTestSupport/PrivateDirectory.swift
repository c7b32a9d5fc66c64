import Foundation

/// A fresh directory only we can enter (mkdtemp: mode 0700), for a child's secret key, named
/// `<prefix>-XXXXXX` in the temporary directory.
public func makePrivateDirectory(prefix: String) throws -> URL {
    let parent = FileManager.default.temporaryDirectory.path
    var template = Array((parent + "/\(prefix)-XXXXXX").utf8CString)
    let created = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
    guard created != nil else {
        throw TestSupportError("mkdtemp in \(parent) failed: \(String(cString: strerror(errno)))")
    }
    let path = template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return URL(fileURLWithPath: String(decoding: path, as: UTF8.self))
}

/// A private directory (see `makePrivateDirectory`) holding `cert.pem` and `key.pem`; removed
/// again if writing fails.
public func writeCredentials(
    certificatePEM: String, keyPEM: String, prefix: String
) throws -> (directory: URL, certificate: URL, key: URL) {
    let directory = try makePrivateDirectory(prefix: prefix)
    let certificatePath = directory.appendingPathComponent("cert.pem")
    let keyPath = directory.appendingPathComponent("key.pem")
    do {
        try certificatePEM.write(to: certificatePath, atomically: false, encoding: .utf8)
        try keyPEM.write(to: keyPath, atomically: false, encoding: .utf8)
    } catch {
        try? FileManager.default.removeItem(at: directory)
        throw error
    }
    return (directory, certificatePath, keyPath)
}

/// A failure of the test support code itself.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String

    public init(_ message: String) {
        description = message
    }
}
