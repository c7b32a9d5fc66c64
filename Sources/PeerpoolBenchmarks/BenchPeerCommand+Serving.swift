import NIOCore
import PeerpoolQUIC

// What a `bench peer` does with connections and streams. Errors end only the stream (or
// connection) they happen on: a client that goes away mid-transfer is normal in a benchmark.

extension BenchPeerCommand {
    /// Stream reset code for a request line that is too long or not a request.
    static let malformedRequestCode: UInt64 = 1

    /// Serves every incoming connection until the endpoint closes.
    static func serve(_ endpoint: QUICEndpoint) async {
        await withDiscardingTaskGroup { group in
            for await connection in endpoint.incomingConnections {
                group.addTask { await serve(connection) }
            }
        }
    }

    /// Serves every stream the peer opens until the connection ends.
    static func serve(_ connection: QUICConnection) async {
        await withDiscardingTaskGroup { group in
            while let stream = try? await connection.acceptStream() {
                group.addTask { await serve(stream) }
            }
        }
    }

    static func serve(_ stream: QUICStream) async {
        do {
            guard let (request, payload) = try await readRequest(stream) else {
                await stream.reset(code: malformedRequestCode)
                await stream.stopSending(code: malformedRequestCode)
                return
            }
            switch request {
            case .source(let count):
                try await source(count, to: stream)
            case .sink:
                var total = payload.readableBytes
                while let chunk = try await stream.read() { total += chunk.readableBytes }
                try await stream.write(ByteBuffer(string: "\(total)\n"))
                try await stream.finish()
            case .echo:
                if payload.readableBytes > 0 { try await stream.write(payload) }
                while let chunk = try await stream.read() { try await stream.write(chunk) }
                try await stream.finish()
            }
        } catch {
            // The stream was reset or the connection ended: nothing left to answer.
        }
    }

    /// Reads until the request line is complete. Returns it and the payload bytes that came
    /// with it, or nil when the line is malformed, too long, or the stream ended first.
    private static func readRequest(_ stream: QUICStream) async throws -> (BenchRequest, ByteBuffer)? {
        var buffered = ByteBuffer()
        while true {
            switch BenchRequest.scan(buffered) {
            case .complete(let request, let offset):
                buffered.moveReaderIndex(forwardBy: offset)
                return (request, buffered)
            case .malformed:
                return nil
            case .needMore:
                guard var chunk = try await stream.read() else { return nil }
                if buffered.readableBytes == 0 {
                    buffered = chunk
                } else {
                    buffered.writeBuffer(&chunk)
                }
            }
        }
    }

    /// Writes `count` bytes of 'x' in 64 KiB slices of one shared block, then finishes. Then
    /// reads the request side to its end (discarding), so that dropping the stream does not
    /// shut down the direction we are still sending on.
    private static func source(_ count: Int, to stream: QUICStream) async throws {
        let block = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
        var left = count
        while left > 0 {
            let length = min(left, block.readableBytes)
            guard let piece = block.getSlice(at: block.readerIndex, length: length) else { break }
            try await stream.write(piece)
            left -= length
        }
        try await stream.finish()
        while try await stream.read() != nil {}
    }
}
