import Foundation
import Testing

@testable import PeerpoolDiscovery

/// Every expected value here comes from Debian's `b3sum` (the BLAKE3 team's Rust implementation),
/// run on the same inputs during the test.
@Suite struct BLAKE3Tests {
    /// Block (64), chunk (1024) and tree boundaries, and a 4-level tree.
    static let lengths = [0, 1, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 8193, 16384, 31744, 102400]
    static let context = "iroh-relay handshake v1 challenge signature"

    /// The official test vectors' input pattern: byte i is i mod 251.
    static func input(_ length: Int) -> [UInt8] { (0..<length).map { UInt8($0 % 251) } }

    func b3sum(_ options: [String]) async throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-b3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var files: [String] = []
        for length in Self.lengths {
            let path = directory.appendingPathComponent("\(length)").path
            try Data(Self.input(length)).write(to: URL(fileURLWithPath: path))
            files.append(path)
        }
        let lines = try await run("/usr/bin/b3sum", options + ["--no-names"] + files).split(separator: "\n").map(String.init)
        try #require(lines.count == Self.lengths.count)
        return lines
    }

    @Test func hash_matchesB3sum() async throws {
        for (length, expected) in zip(Self.lengths, try await b3sum([])) {
            #expect(hex(BLAKE3.hash(Self.input(length))) == expected, "length \(length)")
        }
    }

    @Test func extendedOutput_matchesB3sum() async throws {
        for (length, expected) in zip(Self.lengths, try await b3sum(["--length", "131"])) {
            #expect(hex(BLAKE3.hash(Self.input(length), outputLength: 131)) == expected, "length \(length)")
        }
    }

    @Test func deriveKey_withTheRelayContext_matchesB3sum() async throws {
        for (length, expected) in zip(Self.lengths, try await b3sum(["--derive-key", Self.context])) {
            #expect(hex(BLAKE3.deriveKey(context: Self.context, material: Self.input(length))) == expected, "length \(length)")
        }
    }

    /// Pinned so a broken b3sum install cannot make both sides agree on nothing: BLAKE3 of the
    /// empty input, from the BLAKE3 specification.
    @Test func hash_ofEmptyInput_isTheSpecificationValue() {
        #expect(hex(BLAKE3.hash([])) == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    }
}
