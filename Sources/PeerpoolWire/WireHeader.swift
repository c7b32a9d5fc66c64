/// The 12-byte first frame of every message: version, type, two reserved zero bytes, and a
/// big-endian 64-bit id (a request id or a stream id, depending on the type).
public struct WireHeader: Sendable, Hashable {
    public static let size = 12

    public var version: UInt8
    public var type: WireMessageType
    public var id: UInt64

    public init(_ type: WireMessageType, id: UInt64, version: UInt8 = WireVersion.current) {
        self.version = version
        self.type = type
        self.id = id
    }

    /// Reads a header frame. Errors carry the id when the frame was long enough to hold one, so
    /// the answer can name the request it is about.
    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count == Self.size else {
            throw WireError(.malformedFrame, "a header frame is \(Self.size) bytes, this one has \(bytes.count)")
        }
        let version = bytes[0]
        let type = WireMessageType(rawValue: bytes[1])
        var id: UInt64 = 0
        for index in 4..<12 { id = id << 8 | UInt64(bytes[index]) }
        guard version == WireVersion.current else {
            throw WireError(
                .unsupportedVersion,
                "this supervisor speaks wire protocol version \(WireVersion.current), the message has version \(version)",
                id: id
            )
        }
        guard bytes[2] == 0, bytes[3] == 0 else {
            throw WireError(.malformedFrame, "header bytes 2-3 are reserved and must be zero", id: id)
        }
        self.init(type, id: id, version: version)
    }

    /// Writes the header into exactly `size` bytes.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.size)
        buffer[0] = version
        buffer[1] = type.rawValue
        buffer[2] = 0
        buffer[3] = 0
        var value = id
        for index in stride(from: 11, through: 4, by: -1) {
            buffer[index] = UInt8(truncatingIfNeeded: value)
            value >>= 8
        }
    }

    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.size) { buffer, count in
            encode(into: UnsafeMutableRawBufferPointer(buffer))
            count = Self.size
        }
    }
}

/// Big-endian integers in bodies (OPENED, CREDIT, RESET).
public enum WireInteger {
    /// The largest QUIC application error code: codes are 62-bit varints (RFC 9000 §16), and
    /// ngtcp2 aborts the process on a larger one. RESET bodies above it are refused.
    public static let maxQUICErrorCode: UInt64 = (1 << 62) - 1

    public static func bytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    public static func bytes(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) }
    }

    public static func uint64(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        var value: UInt64 = 0
        for index in offset..<(offset + 8) { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    public static func uint32(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt32 {
        var value: UInt32 = 0
        for index in offset..<(offset + 4) { value = value << 8 | UInt32(bytes[index]) }
        return value
    }
}
