import PeerpoolProtocol
import Testing

struct StreamProtocolTests {
    @Test(arguments: [
        (StreamProtocol.ping, "\"Ping\""), (.whatTimeIsIt, "\"WhatTimeIsIt\""), (.http, "\"Http\""),
        (.httpProxy, "\"HttpProxy\""), (.socks5, "\"Socks5\""), (.tcp, "\"Tcp\""),
        (.deviceToAccount, "\"DeviceToAccount\""), (.accountToAccount, "\"AccountToAccount\""),
        (.accountToDevice, "\"AccountToDevice\""), (.rigControl, "\"RigControl\""),
        (.generic("echo"), "{\"Generic\":\"echo\"}"),
    ])
    func unitAndGenericProtocols_encodeAsFastnNet(_ value: StreamProtocol, _ json: String) throws {
        #expect(value.json == json)
        #expect(try StreamProtocol(json: json) == value)
    }

    @Test func generic_keepsAnyJSON_inCanonicalForm() throws {
        let parsed = try StreamProtocol(json: #"{ "Generic" : {"version": 1, "type": "custom", "ok": true, "list": [1.5, null, "a\"b"]} }"#)
        #expect(parsed.json == #"{"Generic":{"list":[1.5,null,"a\"b"],"ok":true,"type":"custom","version":1}}"#)
        #expect(try StreamProtocol(json: parsed.json) == parsed)
    }

    @Test func header_withExtra_isTwoLines() throws {
        let header = ProtocolHeader(.http, extra: "device-7")
        #expect(try header.encoded() == Array("\"Http\"\ndevice-7\n".utf8))
        #expect(try ProtocolHeader(.ping).encoded() == Array("\"Ping\"\n".utf8))
        #expect(throws: StreamProtocolError.self) { try ProtocolHeader(.http, extra: "two\nlines").encoded() }
    }

    @Test(arguments: ["\"Pong\"", "42", "{\"Generic\":1,\"x\":2}", "{\"Other\":1}", "not json", "[\"Ping\"]", ""])
    func unknownOrMalformed_isRefusedWithAnError(_ text: String) {
        #expect(throws: StreamProtocolError.self) { try StreamProtocol(json: text) }
    }
}
