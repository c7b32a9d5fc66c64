import Testing
@testable import PeerpoolWire

/// Decodes with the header's typed error (Array.withUnsafeBytes only rethrows `any Error`).
func decode(_ bytes: [UInt8]) throws(WireError) -> WireHeader {
    try bytes.withUnsafeBytes { bytes in Result { () throws(WireError) in try WireHeader(decoding: bytes) } }.get()
}

@Suite struct WireHeaderTests {
    @Test func encodesVersionTypeReservedAndBigEndianID() {
        let bytes = WireHeader(.open, id: 0x0102_0304_0506_0708).bytes
        #expect(bytes == [1, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test(arguments: [WireMessageType.open, .cancel, .status, .data, .finish, .reset, .credit, .aborted, .opened, .error, .statusReply, .hello, .heartbeat, .shutdown])
    func roundTrips(_ type: WireMessageType) throws {
        let header = WireHeader(type, id: .max - 5)
        let decoded = try decode(header.bytes)
        #expect(decoded == header)
    }

    @Test(arguments: [0, 1, 11, 13, 100])
    func wrongLengthIsMalformed(_ count: Int) {
        let bytes = [UInt8](repeating: 1, count: count)
        #expect(throws: WireError(.malformedFrame, "")) {
            try decode(bytes)
        }
    }

    @Test func anotherVersionIsNamedAndKeepsTheID() {
        var bytes = WireHeader(.open, id: 42).bytes
        bytes[0] = 2
        do throws(WireError) {
            _ = try decode(bytes)
            Issue.record("version 2 was accepted")
        } catch {
            #expect(error.code == .unsupportedVersion)
            #expect(error.id == 42)
            #expect(error.message.contains("version 1"))
            #expect(error.message.contains("version 2"))
        }
    }

    @Test func nonZeroReservedBytesAreMalformed() {
        var bytes = WireHeader(.data, id: 7).bytes
        bytes[3] = 1
        #expect(throws: WireError(.malformedFrame, "")) {
            try decode(bytes)
        }
    }

    @Test func unknownTypesDecodeAndDescribeThemselves() throws {
        var bytes = WireHeader(.open, id: 1).bytes
        bytes[1] = 0x7f
        let header = try decode(bytes)
        #expect(header.type.description == "type 0x7f")
    }

    @Test func integersAreBigEndian() {
        #expect(WireInteger.bytes(UInt32(0x0A0B_0C0D)) == [0x0A, 0x0B, 0x0C, 0x0D])
        #expect(WireInteger.bytes(UInt64(1)) == [0, 0, 0, 0, 0, 0, 0, 1])
        ([0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 0, 0, 0, 0, 9] as [UInt8]).withUnsafeBytes { bytes in
            #expect(WireInteger.uint32(bytes) == 0x0A0B_0C0D)
            #expect(WireInteger.uint64(bytes, at: 4) == 9)
        }
    }
}

@Suite struct WireErrorTests {
    @Test func bodyRoundTripsWithEscapes() {
        let error = WireError(.workerCrashed, "shard 1's worker \"w\" killed by SIGKILL (signal 9)\nbye")
        let decoded = WireError(jsonBody: error.jsonBody)
        #expect(decoded.code == .workerCrashed)
        #expect(decoded.message == error.message)
    }

    @Test func unknownCodesPassThrough() {
        let decoded = WireError(jsonBody: Array(#"{"code":"connect_failed","message":"no answer"}"#.utf8))
        #expect(decoded.code.rawValue == "connect_failed")
    }

    @Test(arguments: ["", "null", "[]", #"{"code":1}"#, "{"])
    func garbageBodiesBecomeProtocolViolations(_ text: String) {
        #expect(WireError(jsonBody: Array(text.utf8)).code == .protocolViolation)
    }
}
