/// RFC 9000 variable-length integers, as the iroh relay protocol prefixes its frames with them:
/// the top two bits of the first byte give the length (1, 2, 4 or 8 bytes).
public enum QUICVarint {
    public static let maximum: UInt64 = (1 << 62) - 1

    public static func encode(_ value: UInt64, into out: inout [UInt8]) {
        precondition(value <= maximum, "a QUIC varint holds at most 2^62 - 1")
        switch value {
        case 0..<64: out.append(UInt8(value))
        case 64..<16384: out += [0x40 | UInt8(value >> 8), UInt8(value & 0xff)]
        case 16384..<(1 << 30): out += (0..<4).reversed().map { UInt8(truncatingIfNeeded: value >> UInt64($0 * 8)) | ($0 == 3 ? 0x80 : 0) }
        default: out += (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> UInt64($0 * 8)) | ($0 == 7 ? 0xc0 : 0) }
        }
    }

    /// The value at the start of `bytes` and how many bytes it took; `nil` when cut off.
    public static func decode(_ bytes: ArraySlice<UInt8>) -> (value: UInt64, length: Int)? {
        guard let first = bytes.first else { return nil }
        let length = 1 << Int(first >> 6)
        guard bytes.count >= length else { return nil }
        var value = UInt64(first & 0x3f)
        for byte in bytes.dropFirst().prefix(length - 1) { value = value << 8 | UInt64(byte) }
        return (value, length)
    }
}
