import CNGTCP2
import NIOCore

/// A QUIC connection ID as a dictionary key (ngtcp2's `ngtcp2_cid` is a C struct with a tuple).
struct ConnectionID: Hashable, Sendable {
    private var words: (UInt64, UInt64, UInt32)
    private var length: UInt8

    /// Length of the connection IDs we issue; short-header packets carry no length, so every
    /// ID of ours has this one.
    static let localLength = 16

    init(bytes: UnsafePointer<UInt8>, count: Int) {
        precondition(count <= 20)
        var raw: (UInt64, UInt64, UInt32) = (0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { $0.baseAddress!.copyMemory(from: bytes, byteCount: count) }
        words = raw
        length = UInt8(count)
    }

    init(_ cid: ngtcp2_cid) {
        var cid = cid
        self = withUnsafeBytes(of: &cid.data) {
            ConnectionID(bytes: $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: cid.datalen)
        }
    }

    static func == (a: ConnectionID, b: ConnectionID) -> Bool {
        a.length == b.length && a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(length)
    }

    /// A fresh random ID of `localLength` bytes.
    static func random() -> ngtcp2_cid {
        var cid = ngtcp2_cid()
        cid.datalen = localLength
        withUnsafeMutableBytes(of: &cid.data) { _ = gnutls_rnd(GNUTLS_RND_RANDOM, $0.baseAddress, localLength) }
        return cid
    }
}

/// Monotonic nanoseconds: ngtcp2 timestamps and NIO deadlines on one clock, so an ngtcp2 expiry
/// is directly a `NIODeadline`.
@inline(__always)
func monotonicNow() -> UInt64 {
    NIODeadline.now().uptimeNanoseconds
}
