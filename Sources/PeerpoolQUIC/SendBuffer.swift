import CNGTCP2
import NIOCore

/// Bytes of one stream that the application wrote and the peer has not yet acknowledged.
///
/// ngtcp2 does not copy stream data: it keeps pointers into the buffers we hand it and reads them
/// again to retransmit, until `acked_stream_data_offset` says the peer has them. A pointer from
/// `withUnsafeReadableBytes` must not outlive its closure, so each chunk takes its pointer from
/// `withUnsafeReadableBytesWithStorageManagement`, which hands out the storage itself: the chunk
/// retains that storage (`PinnedBytes`), and the pointer stays valid until the chunk is freed.
/// The storage is never written through while pinned. Chunks leave only when fully acknowledged.
struct SendBuffer {
    /// Owns one retain of a ByteBuffer's storage, released in deinit; `base` points into it.
    private final class PinnedBytes {
        let base: UnsafeRawPointer
        let count: Int
        private let storage: Unmanaged<AnyObject>

        init(_ buffer: ByteBuffer) {
            (base, count, storage) = buffer.withUnsafeReadableBytesWithStorageManagement { bytes, storage in
                (UnsafeRawPointer(bytes.baseAddress!), bytes.count, storage.retain())
            }
        }

        deinit { storage.release() }
    }

    private struct Chunk {
        let pinned: PinnedBytes
        var base: UnsafeRawPointer { pinned.base }
        var count: Int { pinned.count }
    }

    private var chunks = CircularBuffer<Chunk>(initialCapacity: 8)
    /// Bytes of `chunks.first` the peer already acknowledged.
    private var acknowledgedInFirst = 0
    /// Position of the first byte not yet handed to ngtcp2.
    private var unsentChunk = 0
    private var unsentOffset = 0

    /// Written and not yet acknowledged: what counts against the stream's send limit.
    private(set) var bufferedBytes = 0
    /// Written and not yet handed to ngtcp2.
    private(set) var unsentBytes = 0

    mutating func append(_ buffer: ByteBuffer) {
        let count = buffer.readableBytes
        guard count > 0 else { return }
        chunks.append(Chunk(pinned: PinnedBytes(buffer)))
        bufferedBytes += count
        unsentBytes += count
    }

    /// Describes up to `capacity` unsent pieces in `vecs`; returns how many and their total size.
    func fillUnsent(_ vecs: UnsafeMutablePointer<ngtcp2_vec>, capacity: Int) -> (count: Int, bytes: Int) {
        var index = unsentChunk
        var offset = unsentOffset
        var count = 0
        var bytes = 0
        while count < capacity, index < chunks.count {
            let chunk = chunks[chunks.index(chunks.startIndex, offsetBy: index)]
            let length = chunk.count - offset
            vecs[count] = ngtcp2_vec(base: UnsafeMutablePointer(mutating: chunk.base.assumingMemoryBound(to: UInt8.self) + offset), len: length)
            bytes += length
            count += 1
            index += 1
            offset = 0
        }
        return (count, bytes)
    }

    /// ngtcp2 took `count` more bytes into packets.
    mutating func markSent(_ count: Int) {
        var remaining = count
        unsentBytes -= count
        while remaining > 0 {
            let chunk = chunks[chunks.index(chunks.startIndex, offsetBy: unsentChunk)]
            let left = chunk.count - unsentOffset
            if remaining >= left {
                remaining -= left
                unsentChunk += 1
                unsentOffset = 0
            } else {
                unsentOffset += remaining
                remaining = 0
            }
        }
    }

    /// The peer acknowledged the next `count` bytes (ngtcp2 reports them in order).
    mutating func acknowledge(_ count: Int) {
        var remaining = count
        bufferedBytes -= count
        while remaining > 0, let first = chunks.first {
            let left = first.count - acknowledgedInFirst
            if remaining >= left {
                remaining -= left
                chunks.removeFirst()
                acknowledgedInFirst = 0
                unsentChunk -= 1
            } else {
                acknowledgedInFirst += remaining
                remaining = 0
            }
        }
    }

    /// Drops everything (stream reset): ngtcp2 forgets the data too.
    mutating func discard() {
        chunks.removeAll()
        acknowledgedInFirst = 0
        unsentChunk = 0
        unsentOffset = 0
        bufferedBytes = 0
        unsentBytes = 0
    }
}
