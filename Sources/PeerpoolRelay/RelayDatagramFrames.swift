import NIOCore
import PeerpoolDiscovery

/// Turns what the QUIC layer hands over (one datagram, or a GSO batch: equal segments, the last
/// one possibly shorter) into relay frames written straight into `ByteBuffer`s: frame 4 for a
/// single datagram, frame 5 with the segment size for several, each frame carrying at most
/// ``RelayFrame/maximumPayloadSize`` bytes of data, as iroh splits its own batches.
/// ``RelayFrame`` encodes the same frames from arrays; this is the copy-once path for the data
/// (and, for frames 6 and 7, the no-copy path back).
enum RelayDatagramFrames {
    static let sendDatagramType: UInt8 = 4
    static let sendBatchType: UInt8 = 5

    /// One encoded frame and how many datagrams it carries (what dropping it loses).
    struct Frame {
        let bytes: ByteBuffer
        let datagrams: Int
    }

    /// How many datagrams `byteCount` bytes hold (what a drop of them counts as).
    static func datagramCount(byteCount: Int, segmentSize: Int?) -> Int {
        guard let segmentSize, segmentSize > 0 else { return 1 }
        return max(1, (byteCount + segmentSize - 1) / segmentSize)
    }

    /// The frames for `datagrams` to `destination` (32 key bytes), or nil if they cannot be
    /// sent: nothing to send, a single datagram over the limit, a segment size of 0 or over 65535.
    static func frames(
        for datagrams: ByteBuffer, segmentSize: Int?, ecn: UInt8, destination: [UInt8], allocator: ByteBufferAllocator
    ) -> [Frame]? {
        let total = datagrams.readableBytes
        guard total > 0, destination.count == 32 else { return nil }
        let ecn = ecn & 0b11
        guard let segmentSize, segmentSize < total else {
            guard total <= RelayFrame.maximumPayloadSize else { return nil }
            return [Frame(bytes: frame(type: sendDatagramType, destination, ecn, segmentSize: nil, data: datagrams, allocator), datagrams: 1)]
        }
        guard segmentSize >= 1, segmentSize <= Int(UInt16.max) else { return nil }
        let perFrame = max(1, RelayFrame.maximumPayloadSize / segmentSize) * segmentSize
        var frames: [Frame] = []
        frames.reserveCapacity((total + perFrame - 1) / perFrame)
        var offset = datagrams.readerIndex
        let end = datagrams.readerIndex + total
        while offset < end {
            let length = min(perFrame, end - offset)
            // Slicing a readable range of the caller's buffer cannot fail.
            let chunk = datagrams.getSlice(at: offset, length: length)!
            let bytes = length <= segmentSize
                ? frame(type: sendDatagramType, destination, ecn, segmentSize: nil, data: chunk, allocator)
                : frame(type: sendBatchType, destination, ecn, segmentSize: UInt16(segmentSize), data: chunk, allocator)
            frames.append(Frame(bytes: bytes, datagrams: datagramCount(byteCount: length, segmentSize: segmentSize)))
            offset += length
        }
        return frames
    }

    /// A received datagram (frame 6) or batch (frame 7) read in place: `data` is a slice of
    /// `message`, not a copy. Nil for any other frame, including malformed or non-minimally
    /// encoded ones: those go to ``RelayClientStateMachine``, which reports what is wrong.
    static func received(_ message: ByteBuffer) -> (source: [UInt8], segmentSize: Int?, data: ByteBuffer)? {
        var message = message
        guard let type = message.readInteger(as: UInt8.self), type == 6 || type == 7,
              let source = message.readBytes(length: 32),
              let ecn = message.readInteger(as: UInt8.self), ecn <= 3
        else { return nil }
        guard type == 7 else { return (source, nil, message) }
        guard let segmentSize = message.readInteger(as: UInt16.self), segmentSize > 0 else { return nil }
        return (source, Int(segmentSize), message)
    }

    private static func frame(
        type: UInt8, _ destination: [UInt8], _ ecn: UInt8, segmentSize: UInt16?, data: ByteBuffer, _ allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var out = allocator.buffer(capacity: 1 + 32 + 1 + 2 + data.readableBytes)
        out.writeInteger(type)  // both types fit in a one-byte QUIC varint
        out.writeBytes(destination)
        out.writeInteger(ecn)
        if let segmentSize { out.writeInteger(segmentSize, endianness: .big) }
        out.writeImmutableBuffer(data)
        return out
    }
}
