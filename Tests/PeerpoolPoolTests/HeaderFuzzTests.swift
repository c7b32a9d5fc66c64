import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

/// Mutated stream headers, from a fixed seed: the parser and a live acceptor must answer each
/// one (parse, refuse or reset) and carry on.
@Suite(.timeLimit(.minutes(2)))
struct HeaderFuzzTests {
    static let seeds: [String] = [
        "\"Ping\"", "{\"Generic\":\"echo\"}", "\"Http\"", "{\"Generic\":{\"a\":[1,2.5,{\"b\":null}],\"c\":\"\\u00e9\"}}",
    ]
    /// Bytes that tend to matter: structure, escapes, newline, NUL, invalid UTF-8, a BOM.
    static let interesting: [UInt8] = [0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x5c, 0x0a, 0x0d, 0x00, 0xff, 0xc3, 0xef, 0xbb, 0xbf, 0x20]

    static func mutate(_ input: [UInt8], _ random: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            let byte = Bool.random(using: &random)
                ? interesting.randomElement(using: &random)! : UInt8.random(in: 0...255, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !bytes.isEmpty: bytes[position] = byte
            case 1: bytes.insert(byte, at: position)
            case 2 where !bytes.isEmpty: bytes.remove(at: position)
            case 3: bytes = Array(bytes.prefix(position))
            case 4: bytes.insert(contentsOf: [0xef, 0xbb, 0xbf], at: 0)
            default: bytes += bytes.prefix(Int.random(in: 0...8, using: &random))
            }
        }
        return bytes
    }

    @Test func parser_answersEveryMutatedHeader_andWhatItAcceptsRoundTrips() throws {
        var random = SeededGenerator(seed: 0x5EED_0001)
        var accepted = 0
        for case_ in 0..<5_000 {
            let bytes = Self.mutate(Array(Self.seeds[case_ % Self.seeds.count].utf8), &random)
            guard let text = String(validating: bytes, as: UTF8.self) else { continue }
            do {
                let parsed = try StreamProtocol(json: text)
                accepted += 1
                #expect(try StreamProtocol(json: parsed.json) == parsed, "case \(case_): \(text.debugDescription)")
            } catch is StreamProtocolError {
                // Refused with our error: fine.
            }
        }
        // Some mutations (a space, a duplicated tail after a complete value...) stay valid.
        #expect(accepted > 0)
    }

    @Test func byteOrderMark_isRefused_asFastnNetRefusesIt() {
        #expect(throws: StreamProtocolError.self) { try StreamProtocol(json: "\u{FEFF}\"Ping\"") }
        #expect(throws: StreamProtocolError.self) { try StreamProtocol(json: "\u{FEFF}{\"Generic\":\"echo\"}") }
        #expect(throws: StreamProtocolError.self) { try JSONValue(parsing: "\u{FEFF}1") }
    }

    @Test func acceptor_answersEveryMutatedHeader_onOneConnection_thenServesPing() async throws {
        try await withTestPeer { peer in
            try await withEndpoint(acceptIncoming: false) { endpoint in
                let connection = try await endpoint.connect(to: peer.key.id52, at: peer.endpoint.localAddress)
                var random = SeededGenerator(seed: 0x5EED_0002)
                let cases = (0..<300).map { Self.mutate(Array(Self.seeds[$0 % Self.seeds.count].utf8), &random) + [0x0a] }

                // 20 at a time: each stream ends (answer, refusal or reset) well within the test's limit.
                var outcomes: [String: Int] = [:]
                for batch in stride(from: 0, to: cases.count, by: 20) {
                    let results = try await withThrowingTaskGroup(of: String.self) { group in
                        for header in cases[batch..<min(batch + 20, cases.count)] {
                            group.addTask {
                                let stream = try await connection.openStream()
                                try await stream.write(header)
                                try await stream.finish()
                                do {
                                    let answer = String(buffer: try await stream.readToEnd(limit: 4096))
                                    if answer.hasPrefix("ack") { return "ack" }
                                    if answer.hasPrefix("refused") { return "refused" }
                                    return "other: \(answer.prefix(40))"
                                } catch let error as QUICError where error.code == .streamReset {
                                    return "reset"
                                }
                            }
                        }
                        return try await group.reduce(into: [String]()) { $0.append($1) }
                    }
                    for result in results { outcomes[result, default: 0] += 1 }
                }
                #expect(outcomes.keys.allSatisfy { ["ack", "refused", "reset"].contains($0) }, "\(outcomes)")
                #expect(outcomes["reset", default: 0] > 0, "\(outcomes)")

                let stream = try await connection.openStream()
                try await stream.write(Array("\"Ping\"\n".utf8))
                try await stream.finish()
                #expect(String(buffer: try await stream.readToEnd(limit: 64)) == "ack\npong\n")
                #expect(await peer.endpoint.connectionCount == 1)
            }
        }
    }
}
