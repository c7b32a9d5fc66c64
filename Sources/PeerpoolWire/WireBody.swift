/// A message body of docs/wire-protocol.md as a typed value: one encoder, one decoder.
///
/// Decoders refuse a body that is not the message's (wrong size, not its JSON, a number out of
/// range) with `malformed_frame` naming the message; the receiving side maps that to its own
/// answer (the supervisor ABORTs the stream, a client reports `protocol_violation`).
public protocol WireBody: Sendable, Equatable {
    /// The message type this body goes with.
    static var messageType: WireMessageType { get }
    /// The body's bytes, as they go in the message's second frame.
    func encoded() -> [UInt8]
    /// Reads a body. `bytes` is valid only during the call and is not kept.
    init(decoding bytes: UnsafeRawBufferPointer) throws(WireError)
}

extension WireBody {
    /// Reads a received body frame; a missing frame reads as an empty body.
    public init(frame: ZMQFrame?) throws(WireError) {
        guard let frame else {
            self = try Self(decoding: UnsafeRawBufferPointer(start: nil, count: 0))
            return
        }
        self = try frame.withUnsafeBytes { bytes throws(WireError) in try Self(decoding: bytes) }
    }

    /// Reads a body held in an array (tests, and bodies built in memory).
    public init(decoding bytes: [UInt8]) throws(WireError) {
        // Array.withUnsafeBytes only rethrows untyped errors: carry the typed one out in a Result.
        let result = bytes.withUnsafeBytes { bytes in Result { () throws(WireError) in try Self(decoding: bytes) } }
        self = try result.get()
    }

    /// Refuses a fixed-size body of the wrong size.
    static func requireSize(_ bytes: UnsafeRawBufferPointer, _ size: Int) throws(WireError) {
        guard bytes.count == size else {
            throw WireError(.malformedFrame, "\(messageType)'s body is \(size) bytes, this one has \(bytes.count)")
        }
    }
}
