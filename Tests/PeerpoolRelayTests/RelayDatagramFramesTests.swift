import NIOCore
import PeerpoolDiscovery
import PeerpoolIdentity
import Testing

@testable import PeerpoolRelay

/// Splitting datagrams into relay frames, without sockets: each frame decodes with
/// `RelayFrame`'s independent decoder.
@Suite struct RelayDatagramFramesTests {
    let destination = SecretKey.generate().id52.publicKeyBytes

    func decoded(_ frames: [RelayDatagramFrames.Frame]?) throws -> [RelayFrame] {
        try #require(frames).map { try RelayFrame(decoding: Array($0.bytes.readableBytesView)) }
    }

    @Test func singleDatagram_isOneFrame4() throws {
        let data = (0..<1200).map { UInt8(truncatingIfNeeded: $0) }
        let frames = try decoded(RelayDatagramFrames.frames(
            for: ByteBuffer(bytes: data), segmentSize: nil, ecn: 2, destination: destination, allocator: .init()))
        #expect(frames == [.sendDatagram(destination: destination, ecn: 2, data: data)])
    }

    @Test func batchOver64KiB_isSplitOnSegmentBoundaries() throws {
        // 100 segments of 1400 bytes: 46 fit in 64 KiB, so 46 + 46 + 8.
        let data = (0..<140_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let frames = try decoded(RelayDatagramFrames.frames(
            for: ByteBuffer(bytes: data), segmentSize: 1400, ecn: 0, destination: destination, allocator: .init()))
        #expect(frames.count == 3)
        #expect(RelayDatagramFrames.frames(
            for: ByteBuffer(bytes: data), segmentSize: 1400, ecn: 0, destination: destination, allocator: .init())?.map(\.datagrams) == [46, 46, 8])
        var joined: [UInt8] = []
        for frame in frames {
            guard case .sendDatagramBatch(let to, _, let size, let chunk) = frame else {
                Issue.record("expected a batch, got \(frame)")
                return
            }
            #expect(to == destination && size == 1400 && chunk.count % 1400 == 0 && chunk.count <= RelayFrame.maximumPayloadSize)
            joined += chunk
        }
        #expect(joined == data)
    }

    @Test func batchTail_ofOneShortSegment_isAPlainDatagram() throws {
        // 47 segments of 1400 and a 100-byte tail: the second frame holds only the tail.
        let data = [UInt8](repeating: 9, count: 46 * 1400 + 100)
        let frames = try decoded(RelayDatagramFrames.frames(
            for: ByteBuffer(bytes: data), segmentSize: 1400, ecn: 0, destination: destination, allocator: .init()))
        #expect(frames.count == 2)
        #expect(frames.last == .sendDatagram(destination: destination, ecn: 0, data: [UInt8](repeating: 9, count: 100)))
    }

    @Test func batchOfOneSegment_isAPlainDatagram() throws {
        let frames = try decoded(RelayDatagramFrames.frames(
            for: ByteBuffer(bytes: [1, 2, 3]), segmentSize: 1200, ecn: 0, destination: destination, allocator: .init()))
        #expect(frames == [.sendDatagram(destination: destination, ecn: 0, data: [1, 2, 3])])
    }

    @Test func receivedFrames_areReadInPlace_andOthersLeftToTheStateMachine() throws {
        let source = SecretKey.generate().id52.publicKeyBytes
        let single = try RelayFrame.receivedDatagram(source: source, ecn: 1, data: [1, 2, 3]).encoded()
        let parsed = try #require(RelayDatagramFrames.received(ByteBuffer(bytes: single)))
        #expect(parsed.source == source && parsed.segmentSize == nil && Array(parsed.data.readableBytesView) == [1, 2, 3])
        let batch = try RelayFrame.receivedDatagramBatch(source: source, ecn: 0, segmentSize: 2, data: [1, 2, 3, 4]).encoded()
        let parsedBatch = try #require(RelayDatagramFrames.received(ByteBuffer(bytes: batch)))
        #expect(parsedBatch.segmentSize == 2 && Array(parsedBatch.data.readableBytesView) == [1, 2, 3, 4])
        // Cut off, a bad ECN, segment size 0, other types: not for the fast path.
        for other in [Array(single.prefix(20)), [6] + source + [4], [7] + source + [0, 0, 0, 1], try RelayFrame.ping(Array(0..<8)).encoded()] {
            #expect(RelayDatagramFrames.received(ByteBuffer(bytes: other)) == nil)
        }
    }

    @Test func unsendable_isRefused() {
        let big = ByteBuffer(bytes: [UInt8](repeating: 0, count: RelayFrame.maximumPayloadSize + 1))
        #expect(RelayDatagramFrames.frames(for: big, segmentSize: nil, ecn: 0, destination: destination, allocator: .init()) == nil)
        #expect(RelayDatagramFrames.frames(for: ByteBuffer(), segmentSize: nil, ecn: 0, destination: destination, allocator: .init()) == nil)
        #expect(RelayDatagramFrames.frames(for: big, segmentSize: 0, ecn: 0, destination: destination, allocator: .init()) == nil)
        #expect(RelayDatagramFrames.datagramCount(byteCount: 2801, segmentSize: 1400) == 3)
    }
}

@Suite struct RelayURLTests {
    @Test func parses_httpAndHttps_withAndWithoutPorts() throws {
        let plain = try RelayURL(parsing: "http://127.0.0.1:3340")
        #expect(!plain.usesTLS && plain.host == "127.0.0.1" && plain.port == 3340 && plain.serverName == nil)
        let iroh = try RelayURL(parsing: "https://euw1-1.relay.iroh.network./")
        #expect(iroh.usesTLS && iroh.port == 443 && iroh.serverName == "euw1-1.relay.iroh.network" && iroh.hostHeader == "euw1-1.relay.iroh.network.")
        let v6 = try RelayURL(parsing: "http://[::1]:8080/relay")
        #expect(v6.host == "::1" && v6.port == 8080 && v6.hostHeader == "[::1]:8080")
    }

    @Test func rejects_otherSchemesAndBadPorts() {
        for text in ["ftp://x", "127.0.0.1:3340", "http://", "http://host:0", "http://host:70000", "http://[::1", "http://u@host"] {
            #expect(throws: RelayError(.invalidRelayURL, "")) { try RelayURL(parsing: text) }
        }
    }
}
