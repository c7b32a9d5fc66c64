import Foundation

/// An ERROR or ABORTED body, and the error a wire client throws: a stable `code` for programs and
/// a `message` for people. docs/wire-protocol.md lists every code.
///
/// Codes are an open set (the worker's pool codes pass through unchanged), so `Code` wraps a
/// string rather than being an enum. Equality compares only the code, so tests can match it.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public var description: String { rawValue }

        public static let unsupportedVersion: Code = "unsupported_version"
        public static let malformedFrame: Code = "malformed_frame"
        public static let unknownType: Code = "unknown_type"
        public static let frameTooLarge: Code = "frame_too_large"
        public static let badRequest: Code = "bad_request"
        public static let badID52: Code = "bad_id52"
        public static let unknownIdentity: Code = "unknown_identity"
        public static let duplicateRequest: Code = "duplicate_request"
        public static let tooManyRequests: Code = "too_many_requests"
        public static let tooManyStreams: Code = "too_many_streams"
        public static let unknownStream: Code = "unknown_stream"
        public static let flowControlViolation: Code = "flow_control_violation"
        public static let shuttingDown: Code = "shutting_down"
        public static let timeout: Code = "timeout"
        public static let cancelled: Code = "cancelled"
        public static let workerCrashed: Code = "worker_crashed"
        public static let workerHung: Code = "worker_hung"
        public static let workerUnavailable: Code = "worker_unavailable"
        public static let streamReset: Code = "stream_reset"
        /// The supervisor dropped this client for not reading its replies (sent, id 0, with the
        /// client's next message).
        public static let clientOverrun: Code = "client_overrun"
        /// Client side only: the connection to the supervisor closed.
        public static let supervisorLost: Code = "supervisor_lost"
        /// Client side only: the client was closed.
        public static let clientClosed: Code = "client_closed"
        /// Client side only: the supervisor answered something this client cannot read.
        public static let protocolViolation: Code = "protocol_violation"
    }

    public var code: Code
    public var message: String
    /// The request or stream id the error is about, when the frame that caused it had one.
    public var id: UInt64

    public init(_ code: Code, _ message: String, id: UInt64 = 0) {
        self.code = code
        self.message = message
        self.id = id
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: WireError, rhs: WireError) -> Bool { lhs.code == rhs.code }

    private struct Body: Codable {
        var code: String
        var message: String
    }

    /// The JSON body of an ERROR or ABORTED message.
    public var jsonBody: [UInt8] {
        WireJSON.encode(Body(code: code.rawValue, message: message))
    }

    /// Reads an ERROR or ABORTED body; a body that is not one becomes a `protocol_violation`.
    public init(jsonBody: some Collection<UInt8>, id: UInt64 = 0) {
        if let body = try? JSONDecoder().decode(Body.self, from: Data(jsonBody)) {
            self.init(Code(rawValue: body.code), body.message, id: id)
        } else {
            self.init(.protocolViolation, "an error body that is not {\"code\", \"message\"} JSON (\(jsonBody.count) bytes)", id: id)
        }
    }
}
