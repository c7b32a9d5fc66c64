import PeerpoolErrors
import Foundation

/// An ERROR or ABORTED body, and the error a wire client throws: a stable `code` for programs and
/// a `message` for people. docs/wire-protocol.md lists every code.
///
/// Codes are an open set (the worker's pool codes pass through unchanged), so `Code` wraps a
/// string rather than being an enum. Equality compares only the code, so tests can match it.
public struct WireError: PeerpoolError {
    public typealias Code = ErrorCode<WireError>

    public var code: Code
    public var message: String
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation
    /// The request or stream id the error is about, when the frame that caused it had one.
    public var id: UInt64

    public init(_ code: Code, _ message: String, id: UInt64 = 0, file: String = #fileID, line: Int = #line) {
        self.location = SourceLocation(fileID: file, line: line)
        self.code = code
        self.message = message
        self.id = id
    }

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

extension ErrorCode where Domain == WireError {
    public static let unsupportedVersion = Self("unsupported_version")
    public static let malformedFrame = Self("malformed_frame")
    public static let unknownType = Self("unknown_type")
    public static let frameTooLarge = Self("frame_too_large")
    public static let badRequest = Self("bad_request")
    public static let badID52 = Self("bad_id52")
    public static let unknownIdentity = Self("unknown_identity")
    public static let duplicateRequest = Self("duplicate_request")
    public static let tooManyRequests = Self("too_many_requests")
    public static let tooManyStreams = Self("too_many_streams")
    public static let unknownStream = Self("unknown_stream")
    public static let flowControlViolation = Self("flow_control_violation")
    public static let shuttingDown = Self("shutting_down")
    public static let timeout = Self("timeout")
    public static let cancelled = Self("cancelled")
    public static let workerCrashed = Self("worker_crashed")
    public static let workerHung = Self("worker_hung")
    public static let workerUnavailable = Self("worker_unavailable")
    public static let streamReset = Self("stream_reset")
    /// The supervisor dropped this client for not reading its replies (sent, id 0, with the
    /// client's next message).
    public static let clientOverrun = Self("client_overrun")
    /// Client side only: the connection to the supervisor closed.
    public static let supervisorLost = Self("supervisor_lost")
    /// Client side only: the client was closed.
    public static let clientClosed = Self("client_closed")
    /// Client side only: the supervisor answered something this client cannot read.
    public static let protocolViolation = Self("protocol_violation")
}
