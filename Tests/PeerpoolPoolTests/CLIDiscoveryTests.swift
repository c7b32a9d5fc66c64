import Foundation
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

/// `peerpool ping ID52 --dns-origin …`: a peer named by its ID52 alone, found through a DNS
/// server on loopback, as a user runs it.
@Suite(.timeLimit(.minutes(3)))
struct CLIDiscoveryTests {
    static let origin = "dns.test.invalid"

    @Test func ping_byID52Alone_withDNSOrigin_getsAPong() async throws {
        let listener = try await ListenProcess()
        let id = listener.identities[0]
        let dns = try await PythonTestServer(dnsZone: [
            IrohEndpointRecord.name(of: id, origin: Self.origin): [[30, "addr=\(listener.host):\(listener.port)"]],
        ])
        let result = try await TestChild.runPeerpool(["ping", "\(id)", "--dns-origin", Self.origin, "--dns-server", "127.0.0.1:\(dns.port)"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("pong from \(id): "), "\(result)")
    }

    /// A relay-only peer is dialled through its relay; one that cannot be reached fails naming it.
    @Test func ping_ofARelayOnlyPeer_whoseRelayIsUnreachable_failsNamingTheRelay() async throws {
        let id = SecretKey.generate().id52
        let dns = try await PythonTestServer(dnsZone: [
            IrohEndpointRecord.name(of: id, origin: Self.origin): [[30, "relay=http://127.0.0.1:1/"]],
        ])
        let result = try await TestChild.runPeerpool(["ping", "\(id)", "--dns-origin", Self.origin, "--dns-server", "127.0.0.1:\(dns.port)", "--timeout", "3"])
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("connect_failed") && result.stderr.contains("relay http://127.0.0.1:1/"), "\(result)")
    }

    // A bare ID52 without --dns-origin or --pkarr-relay: CLIArgumentTests.

    /// The whole round of pkarr discovery between two peerpool commands: `listen --pkarr-relay`
    /// publishes its address signed by its key; `ping ID52 --pkarr-relay` finds it there.
    @Test func listenPublishesToPkarr_andPingFindsItByID52Alone() async throws {
        let relay = try await PythonTestServer(script: "pkarr_relay.py")
        let url = "http://127.0.0.1:\(relay.port)/pkarr"
        let listener = try await ListenProcess(["--pkarr-relay", url])
        let id = listener.identities[0]
        let put = await relay.nextLine()
        #expect(put?.hasPrefix("PUT \(ZBase32.encode(id)) ") == true, "\(String(describing: put))")
        #expect(put?.hasSuffix(" addr=127.0.0.1:\(listener.port)") == true, "\(String(describing: put))")

        let result = try await TestChild.runPeerpool(["ping", "\(id)", "--pkarr-relay", url])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("pong from \(id): "), "\(result)")
        _ = await listener.stop()
    }

    @Test func publishAddress_replacesTheSocketsOwn() async throws {
        let relay = try await PythonTestServer(script: "pkarr_relay.py")
        let listener = try await ListenProcess([
            "--pkarr-relay", "http://127.0.0.1:\(relay.port)/pkarr", "--publish-address", "192.0.2.7:4433",
            "--publish-address", "[2001:db8::7]:4433",
        ])
        let put = await relay.nextLine()
        #expect(put?.hasSuffix(" addr=192.0.2.7:4433,addr=[2001:db8::7]:4433") == true, "\(String(describing: put))")
        _ = await listener.stop()
    }

    @Test func publishAddress_withoutPkarrRelay_isAUsageError() async throws {
        let result = try await TestChild.runPeerpool(["listen", "--publish-address", "192.0.2.7:4433"])
        #expect(result.status != 0 && result.stderr.contains("--publish-address needs --pkarr-relay"), "\(result)")
    }

    /// A listener that publishes only its relay (as iroh 1.x peers do) is reached by its ID52
    /// alone through that relay: `ping` and an echo through `stream`, and the relay carried them.
    @Test func relayOnlyListener_isReachedThroughItsRelay_byID52Alone() async throws {
        let relay = try await PythonTestRelay.start()
        let pkarr = try await PythonTestServer(script: "pkarr_relay.py")
        let pkarrURL = "http://127.0.0.1:\(pkarr.port)/pkarr"
        let listener = try await ListenProcess(["--relay", relay.url, "--pkarr-relay", pkarrURL, "--publish-relay-only"])
        let id = listener.identities[0]
        let put = await pkarr.nextLine()
        #expect(put?.hasSuffix(" relay=\(relay.url)") == true, "\(String(describing: put))")

        let ping = try await TestChild.runPeerpool(["ping", "\(id)", "--pkarr-relay", pkarrURL, "--count", "2", "--interval", "0"])
        #expect(ping.status == 0, "\(ping)")
        #expect(ping.stdout.components(separatedBy: "pong from \(id): ").count == 3, "\(ping)")

        let text = String(repeating: "through the relay\n", count: 20_000)
        let echo = try await TestChild.runPeerpool(
            ["stream", "\(id)", "--pkarr-relay", pkarrURL, "--protocol", #"{"Generic":"echo"}"#], input: text)
        #expect(echo.status == 0, "\(echo.stderr)")
        #expect(echo.stdout == text, "\(echo.stdout.count) bytes came back of \(text.utf8.count)")
        _ = await listener.stop()
    }

    @Test func relayWithSeveralIdentitiesOnOneSocket_isAUsageError() async throws {
        let relay = try await PythonTestRelay.start()
        let result = try await TestChild.runPeerpool(["listen", "--relay", relay.url, "--identities", "2"])
        #expect(result.status != 0 && result.stderr.contains("--relay needs one identity per socket"), "\(result)")
    }
}
