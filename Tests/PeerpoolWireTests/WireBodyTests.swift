import Foundation
import PeerpoolIdentity
import PeerpoolProtocol
import PeerpoolWire
import Testing

/// Every message body of docs/wire-protocol.md: what it encodes to, that it decodes back, and
/// that a body that is not the message's is refused with the code the receivers answer today.
struct WireBodyTests {
    func roundTrip<Body: WireBody>(_ body: Body) throws -> Body {
        try Body(decoding: body.encoded())
    }

    func refusal<Body: WireBody>(_ type: Body.Type, _ bytes: [UInt8]) -> WireError.Code? {
        #expect(throws: WireError.self) { try Body(decoding: bytes) }
        do { _ = try Body(decoding: bytes) } catch { return error.code }
        return nil
    }

    @Test func opened_isStreamIDWindowAndReservedZeros() throws {
        let body = OpenedBody(streamID: 0x0102_0304_0506_0708, sendWindow: 0x0A0B_0C0D)
        #expect(body.encoded() == [1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 0])
        #expect(try roundTrip(body) == body)
    }

    @Test(arguments: [0, 15, 17])
    func opened_ofTheWrongSize_isMalformed(_ size: Int) {
        #expect(refusal(OpenedBody.self, Array(repeating: 0, count: size)) == .malformedFrame)
    }

    @Test func credit_isFourBytes() throws {
        let body = CreditBody(bytes: 0xDEAD_BEEF)
        #expect(body.encoded() == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(try roundTrip(body) == body)
        #expect(refusal(CreditBody.self, [0, 0, 1]) == .malformedFrame)
        #expect(refusal(CreditBody.self, []) == .malformedFrame)
        #expect(refusal(CreditBody.self, [0, 0, 0, 0, 1]) == .malformedFrame)
    }

    @Test func reset_isEightBytes_upTo2To62Minus1() throws {
        let largest = ResetBody(code: WireInteger.maxQUICErrorCode)
        #expect(largest.encoded() == [0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try roundTrip(largest) == largest)
        #expect(try roundTrip(ResetBody.abandoned) == ResetBody(code: 0))
        #expect(refusal(ResetBody.self, ResetBody(code: WireInteger.maxQUICErrorCode + 1).encoded()) == .malformedFrame)
        #expect(refusal(ResetBody.self, ResetBody(code: .max).encoded()) == .malformedFrame)
        #expect(refusal(ResetBody.self, [0, 0, 0, 0]) == .malformedFrame)
    }

    @Test func helloHeartbeatShutdown_roundTrip_asTheDocumentsJSON() throws {
        let hello = HelloBody(index: 3, generation: 7, pid: 4242)
        #expect(String(decoding: hello.encoded(), as: UTF8.self) == #"{"generation":7,"index":3,"pid":4242}"#)
        #expect(try roundTrip(hello) == hello)

        let beat = HeartbeatBody(connections: 2, streams: 3, requests: 4)
        #expect(String(decoding: beat.encoded(), as: UTF8.self) == #"{"connections":2,"requests":4,"streams":3}"#)
        #expect(try roundTrip(beat) == beat)

        let shutdown = ShutdownBody(graceMilliseconds: 1000)
        #expect(String(decoding: shutdown.encoded(), as: UTF8.self) == #"{"grace_ms":1000}"#)
        #expect(try roundTrip(shutdown).grace == .seconds(1))
        #expect(try ShutdownBody(decoding: Array("{}".utf8)).grace == ShutdownBody.defaultGrace)
        #expect(try ShutdownBody(decoding: Array(#"{"grace_ms":-5,"later":true}"#.utf8)).grace == .zero)
    }

    @Test(arguments: ["", "not json", "[]", #"{"connections":"two"}"#])
    func jsonBodies_thatAreNotTheirJSON_areMalformed(_ text: String) {
        #expect(refusal(HelloBody.self, Array(text.utf8)) == .malformedFrame)
        #expect(refusal(HeartbeatBody.self, Array(text.utf8)) == .malformedFrame)
        #expect(refusal(SupervisorStatus.self, Array(text.utf8)) == .malformedFrame)
    }

    @Test func errorBody_roundTrips_andAnythingElseIsAProtocolViolation() {
        let error = WireError(.workerCrashed, "shard 1: killed by signal 9 \"quoted\" / slash")
        let decoded = WireError(jsonBody: error.jsonBody, id: 5)
        #expect(decoded.code == .workerCrashed && decoded.message == error.message && decoded.id == 5)
        #expect(WireError(jsonBody: Array("{}".utf8)).code == .protocolViolation)
    }

    @Test func statusReply_roundTrips_withNullsForAWorkerWithoutAProcess() throws {
        let status = SupervisorStatus(
            version: 1, pid: 10, uptimeSeconds: 1.5, clients: 1, streams: 2, requests: 3,
            workers: [
                .init(index: 0, pid: 11, state: "running", uptimeSeconds: 1.25, restarts: 0, connections: 1, streams: 2, requests: 3),
                .init(index: 1, pid: nil, state: "backoff", uptimeSeconds: nil, restarts: 6, connections: 0, streams: 0, requests: 0),
            ],
            clientsOverrun: 0)
        #expect(try roundTrip(status) == status)
        #expect(String(decoding: status.encoded(), as: UTF8.self).contains(#""pid":null"#))
    }

    @Test func open_roundTrips_everyField() throws {
        let remote = SecretKey.generate().id52
        let local = SecretKey.generate().id52
        let open = OpenRequest(
            remote: remote, address: "[::1]:4433", local: local,
            header: ProtocolHeader(.generic(.object([("k", "v")])), extra: "line"), timeout: .milliseconds(2500), window: 4096)
        #expect(try roundTrip(open) == open)
        let minimal = OpenRequest(remote: remote, header: ProtocolHeader(.ping))
        #expect(try roundTrip(minimal) == minimal)
    }

    @Test(arguments: [
        ("[]", WireError.Code.badRequest), ("not json", .badRequest), (#"{"protocol":"Ping"}"#, .badRequest),
        (#"{"remote":"nope","protocol":"Ping"}"#, .badID52), (#"{"remote":"REMOTE","protocol":"Pong"}"#, .badRequest),
        (#"{"remote":"REMOTE","protocol":"Ping","address":"localhost:80"}"#, .badRequest),
        (#"{"remote":"REMOTE","protocol":"Ping","timeout_ms":0}"#, .badRequest),
        (#"{"remote":"REMOTE","protocol":"Ping","window":16777217}"#, .badRequest),
        (#"{"remote":"REMOTE","protocol":"Ping","extra":"a\nb"}"#, .badRequest),
    ])
    func open_thatIsNotARequest_isRefused_withItsCode(_ text: String, _ code: WireError.Code) {
        let body = text.replacingOccurrences(of: "REMOTE", with: SecretKey.generate().id52.description)
        #expect(refusal(OpenRequest.self, Array(body.utf8)) == code)
    }

    /// The answer's code is the one code in it: a stream-protocol fault inside is told by its
    /// message alone.
    @Test(arguments: ["not json", #"{"remote":"REMOTE","protocol":"Pong"}"#])
    func open_refusal_namesOneCode(_ text: String) {
        let body = text.replacingOccurrences(of: "REMOTE", with: SecretKey.generate().id52.description)
        do {
            _ = try OpenRequest(jsonBody: Array(body.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .badRequest)
            #expect(!error.message.contains("malformed_header") && !error.message.contains("_"), "\(error.message)")
        }
    }
}
