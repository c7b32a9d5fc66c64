import Foundation

/// The JSON bodies' one encoder and decoder: keys sorted (stable bytes for tests and logs), keys
/// spelled out in each body's `CodingKeys`, unknown fields ignored as the document asks.
enum WireJSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every body is plain numbers and strings: encoding cannot fail.
        return (try? [UInt8](encoder.encode(value))) ?? Array("{}".utf8)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer, _ messageType: WireMessageType) throws(WireError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw WireError(.malformedFrame, "\(messageType)'s body is not its JSON (\(bytes.count) bytes): \(error)")
        }
    }
}
