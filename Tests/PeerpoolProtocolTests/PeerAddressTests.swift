import PeerpoolIdentity
import PeerpoolProtocol
import Testing

struct PeerAddressTests {
    @Test func ipv6WithoutBrackets_isRefusedAsAmbiguous() throws {
        let id = SecretKey.generate().id52
        #expect(throws: PeerAddressError.self) { try PeerAddress(parsing: "\(id)@::1:80") }
        let bracketed = try PeerAddress(parsing: "\(id)@[::1]:80")
        #expect(bracketed.socketAddress?.port == 80)
    }

    @Test(arguments: ["not-an-id52@127.0.0.1:80", "ID52", "@127.0.0.1:80"])
    func badID52_isRefused_withBadAddress(_ text: String) {
        let error = #expect(throws: PeerAddressError.self) { try PeerAddress(parsing: text) }
        #expect(error?.code.name == "bad_address")
    }

    @Test(arguments: [
        "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "localhost:80", "[::1]", "127.0.0.1:+80", "127.0.0.1:",
        ":80", "[]:80", "127.0.0.1:8 0", "127.0.0.1:999999999999999999999", "[::1:80", "1.2.3:80",
    ])
    func badHostPort_isRefused_withBadAddress_namingThePeer(_ hostPort: String) {
        let id = SecretKey.generate().id52
        let error = #expect(throws: PeerAddressError.self) { try PeerAddress(parsing: "\(id)@\(hostPort)") }
        #expect(error?.code.name == "bad_address")
        #expect(error?.peer == id)
    }

    @Test func description_roundTrips() throws {
        let id = SecretKey.generate().id52
        for text in ["\(id)", "\(id)@127.0.0.1:4433", "\(id)@[::1]:4433", "\(id)@[fe80::1]:1", "\(id)@10.0.0.1:65535"] {
            #expect(try PeerAddress(parsing: text).description == text)
        }
    }
}
