import PeerpoolProtocol
import Testing

/// `JSONValue(parsing:)` accepts what serde_json (fastn-net's side) accepts and writes serde_json's
/// canonical form: a header one side takes and the other refuses would split the network.
struct JSONValueTests {
    @Test(arguments: [
        (" {\"b\" : [1, -0, 2.50, 1E2, 1e-2, true, false, null], \"a\": {}} ", #"{"a":{},"b":[1,0,2.5,100.0,0.01,true,false,null]}"#),
        (#"{"k":1,"k":2}"#, #"{"k":2}"#),
        (#"{"é":1,"z":2,"Z":3}"#, #"{"Z":3,"z":2,"é":1}"#),
        (#""a\"b\\c\/d\b\f\n\r\t""#, #""a\"b\\c/d\b\f\n\r\t""#),
        (#""\u00e9\ud83d\ude00\u0001""#, "\"é😀\\u0001\""),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ("[[],[[]]]", "[[],[[]]]"),
        ("\"ünïcödé\"", "\"ünïcödé\""),
    ])
    func accepted_inCanonicalForm(_ text: String, _ canonical: String) throws {
        let value = try JSONValue(parsing: text)
        #expect(value.json == canonical)
        #expect(try JSONValue(parsing: value.json) == value, "the canonical form reads back to the same value")
    }

    @Test(arguments: [
        "", " ", "\u{FEFF}{}", "{,}", "[1,]", "{\"a\":1,}", "01", "-", "1.", ".5", "1e", "+1", "NaN", "Infinity",
        "1e400", "'a'", "{a:1}", "[1 2]", "{\"a\" 1}", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
        "\"\\x41\"", "\"\\u12\"", "\"tab\there\"", "\"open", "[1", "{\"a\":1", "true false", "// c\n1", "nul", "tru",
    ])
    func refused_withAMalformedHeaderError(_ text: String) {
        #expect(throws: StreamProtocolError.self) { try JSONValue(parsing: text) }
    }

    @Test func nesting_128Deep_isRead_129_isRefusedWithoutExhaustingTheStack() throws {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(try JSONValue(parsing: ok).json == ok)
        let deep = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        #expect(throws: StreamProtocolError.self) { try JSONValue(parsing: deep) }
        let hostile = String(repeating: "[", count: 1_000_000)
        #expect(throws: StreamProtocolError.self) { try JSONValue(parsing: hostile) }
    }

    @Test func invalidUTF8_insideAString_isRefused() {
        let bytes: [UInt8] = [0x22, 0xFF, 0xFE, 0x22]
        #expect(throws: StreamProtocolError.self) {
            try bytes.withUnsafeBytes { try JSONValue(parsingUTF8: $0) }
        }
    }

    @Test func errors_sayWhatAndWhere() {
        do {
            _ = try JSONValue(parsing: "[1,]")
            Issue.record("[1,] was accepted")
        } catch {
            #expect("\(error)".contains("at byte 3"), "\(error)")
        }
    }
}
