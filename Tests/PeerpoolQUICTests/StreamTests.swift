import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct StreamTests {
    @Test func oneStream_carries64MiBEachWay_byteExact() async throws {
        try await withEchoConnection { connection in
            let total = 64 * 1024 * 1024
            let stream = try await connection.openStream()
            async let received = readVerifyingPattern(stream, expected: total)
            try await writePattern(stream, total: total)
            #expect(try await received == total)
        }
    }

    @Test func twoHundredConcurrentStreams_onOneConnection_allComplete() async throws {
        try await withEchoConnection { connection in
            let size = 32 * 1024
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let stream = try await connection.openStream()
                        let payload = patternBuffer(offset: index, count: size)
                        try await stream.write(payload)
                        try await stream.finish()
                        let echoed = try await stream.readToEnd(limit: size)
                        #expect(echoed == payload, "stream \(index)")
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func openStream_beyondPeerLimit_waitsForASlot() async throws {
        try await ConnectedPair.with(server: testConfiguration { $0.maxConcurrentBidirectionalStreams = 2 }) { pair in
            let connection = pair.connection
            let serverSide = pair.serverSide

            let first = try await connection.openStream()
            let second = try await connection.openStream()
            for stream in [first, second] {
                try await stream.write(Array("x".utf8))
            }
            let third = Task { try await connection.openStream() }
            // The third open must still be waiting while both slots are taken.
            #expect(await completes(third, within: .milliseconds(300)) == false)

            // Finish the first stream completely on both sides: the peer frees a slot.
            let firstAtServer = try await serverSide.acceptStream()
            try await first.finish()
            _ = try await firstAtServer.readToEnd(limit: 16)
            try await firstAtServer.finish()
            #expect(try await first.readToEnd(limit: 16).readableBytes == 0)
            #expect(await completes(third, within: .seconds(15)))
            _ = try await third.value
            _ = second
        }
    }

    @Test func readerThatStopsReading_keepsWriterSuspended_andBuffersBounded() async throws {
        let window = 1024 * 1024
        try await ConnectedPair.with(
            server: testConfiguration {
                $0.initialStreamReceiveWindow = window
                $0.maxStreamReceiveWindow = window
                $0.initialConnectionReceiveWindow = window
                $0.maxConnectionReceiveWindow = 2 * window
            },
            client: testConfiguration { $0.streamSendBufferLimit = window }) { pair in
            let connection = pair.connection
            let serverSide = pair.serverSide

            let stream = try await connection.openStream()
            let written = Counter()
            let total = 64 * 1024 * 1024
            let writer = Task {
                let block = ByteBuffer(repeating: 0x5a, count: 64 * 1024)
                var sent = 0
                while sent < total {
                    try await stream.write(block)
                    sent += block.readableBytes
                    await written.add(block.readableBytes)
                }
                try await stream.finish()
            }
            let peerStream = try await serverSide.acceptStream()
            // Nobody reads on the server. The writer must stall near window + send limit.
            #expect(await completes(writer, within: .seconds(2)) == false)
            let stalledAt = await written.value
            #expect(stalledAt <= 3 * window + 64 * 1024, "writer got \(stalledAt) bytes out to a peer that reads nothing")
            // That bound is the memory bound: the writer's stream holds at most its send limit, the
            // reader's at most its window. (Process RSS is not asserted: other suites run alongside.)

            // Once the peer reads, everything flows and the writer completes.
            var read = 0
            while let chunk = try await peerStream.read() { read += chunk.readableBytes }
            try await writer.value
            #expect(read == total)
        }
    }

    @Test func reset_byWriter_failsPeerReadWithCode() async throws {
        try await ConnectedPair.with { pair in
            let connection = pair.connection
            let serverSide = pair.serverSide

            let stream = try await connection.openStream()
            try await stream.write(Array("partial".utf8))
            let peerStream = try await serverSide.acceptStream()
            await stream.reset(code: 7)
            let error = await #expect(throws: QUICError.self) {
                while try await peerStream.read() != nil {}
            }
            #expect(error?.code == .streamReset)
            #expect(error?.message.contains("code 7") == true)
            // The connection lives on.
            let next = try await connection.openStream()
            try await next.write(Array("ok".utf8))
            try await next.finish()
            let nextAtPeer = try await serverSide.acceptStream()
            #expect(String(buffer: try await nextAtPeer.readToEnd(limit: 16)) == "ok")
        }
    }

    @Test func stopSending_byReader_failsPeerWritesWithCode() async throws {
        try await ConnectedPair.with { pair in
            let connection = pair.connection
            let serverSide = pair.serverSide

            let stream = try await connection.openStream()
            try await stream.write(Array("hello".utf8))
            let peerStream = try await serverSide.acceptStream()
            _ = try await peerStream.read()
            await peerStream.stopSending(code: 9)
            let error = await #expect(throws: QUICError.self) {
                let block = ByteBuffer(repeating: 1, count: 64 * 1024)
                for _ in 0..<10_000 { try await stream.write(block) }
            }
            #expect(error?.code == .streamStopped, "\(String(describing: error))")
            // Our own read side hears the code: ngtcp2 answers STOP_SENDING with RESET_STREAM(9).
            _ = peerStream
        }
    }

    @Test func readToEnd_pastLimit_failsWithTooMuchData() async throws {
        try await withEchoConnection { connection in
            let stream = try await connection.openStream()
            try await stream.write(ByteBuffer(repeating: 3, count: 10_000))
            try await stream.finish()
            let error = await #expect(throws: QUICError.self) { _ = try await stream.readToEnd(limit: 1000) }
            #expect(error?.code == .tooMuchData)
        }
    }

    @Test func read_cancelled_withdrawsTheReader() async throws {
        try await ConnectedPair.with { pair in
            let connection = pair.connection
            let serverSide = pair.serverSide
            let stream = try await connection.openStream()
            try await stream.write(Array("x".utf8))
            let peerStream = try await serverSide.acceptStream()
            defer { _ = peerStream }

            let reader = Task { try await stream.read() }
            reader.cancel()
            await #expect(throws: CancellationError.self) { _ = try await reader.value }
            // A new reader can wait on the same stream afterwards.
            let again = Task { try await stream.read() }
            #expect(await completes(again, within: .milliseconds(200)) == false)
            again.cancel()
            await #expect(throws: CancellationError.self) { _ = try await again.value }
        }
    }
}
