import NIOCore
import PeerpoolQUIC

/// Reads newline-terminated lines from a QUIC stream without losing what follows them.
struct LineReader {
    let stream: QUICStream
    /// Bytes read past the last line returned.
    var buffered = ByteBuffer()

    enum Failure: Error {
        /// The stream ended before a newline; `partial` is what arrived.
        case endOfStream(partial: String)
        /// More than the limit arrived without a newline.
        case tooLong
        /// The line is not UTF-8.
        case notUTF8
    }

    /// The next line, without its `\n`. At most `limit` bytes are buffered looking for it.
    mutating func nextLine(limit: Int) async throws -> String {
        while true {
            if let newline = buffered.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = newline - buffered.readerIndex
                let bytes = buffered.readBytes(length: length)!
                buffered.moveReaderIndex(forwardBy: 1)
                guard let line = String(validating: bytes, as: UTF8.self) else {
                    throw Failure.notUTF8
                }
                return line
            }
            guard buffered.readableBytes <= limit else { throw Failure.tooLong }
            guard var chunk = try await stream.read() else {
                throw Failure.endOfStream(partial: String(decoding: buffered.readableBytesView.prefix(200), as: UTF8.self))
            }
            buffered.writeBuffer(&chunk)
        }
    }
}
