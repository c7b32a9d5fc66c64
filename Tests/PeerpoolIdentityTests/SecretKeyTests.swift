import Foundation
import Testing

@testable import PeerpoolIdentity

@Suite struct SecretKeyTests {
    /// RFC 8032 section 7.1, TEST 1.
    static let rfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    static let rfcPublicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    static let rfcEmptyMessageSignature =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
        + "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"

    func loadError(_ path: String) -> IdentityError? {
        #expect(throws: IdentityError.self) { try SecretKey.load(fromFile: path) }
    }

    // MARK: Construction

    @Test func hexSeed_matchesRFC8032Vector() throws {
        let key = try SecretKey(hexSeed: Self.rfcSeed)
        #expect(key.id52.publicKeyBytes == (try Hex.decode(Self.rfcPublicKey)))
        #expect(key.hexSeed == Self.rfcSeed)
        #expect(try key.sign([UInt8]()) == (try Hex.decode(Self.rfcEmptyMessageSignature)))
    }

    @Test func hexSeed_acceptsUppercaseAndSurroundingWhitespace() throws {
        let key = try SecretKey(hexSeed: "  \(Self.rfcSeed.uppercased())\r\n")
        #expect(key.hexSeed == Self.rfcSeed)
    }

    @Test func seed_roundTripsThroughHexSeed() throws {
        let key = SecretKey.generate()
        #expect(key.hexSeed.count == 64)
        #expect(key.hexSeed == key.hexSeed.lowercased())
        let copy = try SecretKey(seed: try Hex.decode(key.hexSeed))
        #expect(copy.id52 == key.id52)
        #expect(try SecretKey(hexSeed: key.hexSeed).id52 == key.id52)
    }

    @Test func generate_makesDifferentKeys() {
        #expect(SecretKey.generate().id52 != SecretKey.generate().id52)
    }

    @Test(arguments: [0, 31, 33, 64])
    func seed_whenNot32Bytes_throwsWrongLength(count: Int) {
        let error = #expect(throws: IdentityError.self) {
            try SecretKey(seed: [UInt8](repeating: 7, count: count))
        }
        #expect(error?.code == .wrongLength)
    }

    @Test func hexSeed_whenMalformed_throwsKeyFileMalformedWithoutEchoingTheSecret() {
        let tooShort = String(Self.rfcSeed.dropLast())
        let nonHex = String(Self.rfcSeed.dropLast()) + "x"
        let odd = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f6é"
        for input in [tooShort, nonHex, odd, "", String(repeating: "a", count: 128)] {
            let error = #expect(throws: IdentityError.self) { try SecretKey(hexSeed: input) }
            #expect(error?.code == .keyFileMalformed, "\(input)")
            #expect(error?.message.contains("64 hexadecimal characters") == true)
            #expect(error?.message.contains(tooShort) == false)
        }
        let error = #expect(throws: IdentityError.self) { try SecretKey(hexSeed: nonHex) }
        #expect(error?.message.contains("character 64") == true)
    }

    // MARK: Signing

    @Test func signature_verifiesOnlyForTheSignedMessage() throws {
        let key = SecretKey.generate()
        let message = Array("the quick brown fox".utf8)
        let signature = try key.sign(message)
        #expect(signature.count == 64)
        #expect(key.id52.isValidSignature(signature, for: message))
        #expect(!key.id52.isValidSignature(signature, for: Array("the quick brown fix".utf8)))
        var tampered = signature
        tampered[0] ^= 1
        #expect(!key.id52.isValidSignature(tampered, for: message))
    }

    // MARK: Not leaking the secret

    @Test func description_showsOnlyTheID52() {
        let key = SecretKey.generate()
        #expect(key.description == "SecretKey(\(key.id52))")
        #expect("\(key)" == "SecretKey(\(key.id52))")
        #expect(!String(reflecting: key).contains(key.hexSeed))
        var dumped = ""
        dump(key, to: &dumped)
        #expect(dumped.contains(key.id52.description))
        #expect(!dumped.lowercased().contains(key.hexSeed))
    }

    // MARK: Key files

    @Test func saveThenLoad_roundTripsWithMode0600() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/peer.private-key"
            let key = SecretKey.generate()
            try key.save(toFile: path)
            #expect(try permissions(ofFile: path) == 0o600)
            #expect(try String(contentsOfFile: path, encoding: .utf8) == key.hexSeed + "\n")
            #expect(try SecretKey.load(fromFile: path).id52 == key.id52)
        }
    }

    @Test func loadFromFiles_keepsTheOrder_andRefusesOneKeyInTwoFiles_namingBoth() throws {
        try withTemporaryDirectory { directory in
            let (a, b) = (SecretKey.generate(), SecretKey.generate())
            try a.save(toFile: directory + "/a.private-key")
            try b.save(toFile: directory + "/b.private-key")
            try writeFile(directory + "/copy.private-key", contents: a.hexSeed + "\n", mode: 0o600)
            let loaded = try SecretKey.load(fromFiles: [directory + "/b.private-key", directory + "/a.private-key"])
            #expect(loaded.map(\.id52) == [b.id52, a.id52])
            let error = #expect(throws: IdentityError.self) {
                try SecretKey.load(fromFiles: [directory + "/a.private-key", directory + "/b.private-key", directory + "/copy.private-key"])
            }
            #expect(error?.code == .duplicateIdentity)
            #expect(error?.message.contains("a.private-key and \(directory)/copy.private-key both hold \(a.id52)") == true, "\(String(describing: error))")
        }
    }

    @Test func load_acceptsFastnStyleFileWithoutNewline() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/fastn.private-key"
            try writeFile(path, contents: Self.rfcSeed, mode: 0o600)
            #expect(try SecretKey.load(fromFile: path).hexSeed == Self.rfcSeed)
        }
    }

    @Test func load_acceptsOwnerReadOnlyFile() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/readonly.private-key"
            try writeFile(path, contents: Self.rfcSeed + "\n", mode: 0o400)
            #expect(try SecretKey.load(fromFile: path).hexSeed == Self.rfcSeed)
        }
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601])
    func load_whenGroupOrOthersHaveAccess_refusesWithChmodHint(mode: Int) throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/open.private-key"
            try writeFile(path, contents: Self.rfcSeed + "\n", mode: mode)
            let error = loadError(path)
            #expect(error?.code == .keyFileInsecurePermissions)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("chmod 600 \(path)") == true)
            #expect(error?.message.contains("mode 0\(String(mode, radix: 8))") == true)
            #expect(error?.message.contains(Self.rfcSeed) == false)
        }
    }

    @Test func load_whenFileIsMissing_throwsKeyFileUnreadable() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/missing.private-key"
            let error = loadError(path)
            #expect(error?.code == .keyFileUnreadable)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains(String(cString: strerror(ENOENT))) == true)
        }
    }

    @Test func load_whenPathIsADirectory_throwsKeyFileUnreadable() throws {
        try withTemporaryDirectory { directory in
            #expect(loadError(directory)?.code == .keyFileUnreadable)
        }
    }

    @Test(arguments: ["not a key\n", "", "\(String(repeating: "0", count: 63))\n", "\u{FF}\u{FE}"])
    func load_whenContentIsNotAKey_throwsKeyFileMalformed(contents: String) throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/bad.private-key"
            try writeFile(path, contents: contents, mode: 0o600)
            let error = loadError(path)
            #expect(error?.code == .keyFileMalformed)
            #expect(error?.message.contains(path) == true)
        }
    }

    @Test func load_whenFileIsNotUTF8_throwsKeyFileMalformed() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/binary.private-key"
            try Data([0xff, 0xfe, 0x00, 0x80]).write(to: URL(fileURLWithPath: path))
            try setPermissions(0o600, ofFile: path)
            let error = loadError(path)
            #expect(error?.code == .keyFileMalformed)
            #expect(error?.message.contains("not text") == true)
        }
    }

    @Test func load_whenFileIsHuge_throwsKeyFileMalformed() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/huge.private-key"
            try writeFile(path, contents: String(repeating: "0", count: 100_000), mode: 0o600)
            #expect(loadError(path)?.code == .keyFileMalformed)
        }
    }

    @Test func save_whenFileExists_refusesAndKeepsTheOldKey() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/peer.private-key"
            let original = SecretKey.generate()
            try original.save(toFile: path)
            let error = #expect(throws: IdentityError.self) {
                try SecretKey.generate().save(toFile: path)
            }
            #expect(error?.code == .keyFileExists)
            #expect(error?.message.contains(path) == true)
            #expect(try SecretKey.load(fromFile: path).id52 == original.id52)
        }
    }

    @Test func save_withOverwrite_replacesTheKeyAndLeavesNoTemporaryFile() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/peer.private-key"
            try SecretKey.generate().save(toFile: path)
            let replacement = SecretKey.generate()
            try replacement.save(toFile: path, overwrite: true)
            #expect(try SecretKey.load(fromFile: path).id52 == replacement.id52)
            #expect(try permissions(ofFile: path) == 0o600)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["peer.private-key"])
        }
    }

    @Test func save_withOverwrite_createsAMissingFile() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/new.private-key"
            let key = SecretKey.generate()
            try key.save(toFile: path, overwrite: true)
            #expect(try SecretKey.load(fromFile: path).id52 == key.id52)
        }
    }

    @Test func save_whenDirectoryIsMissing_throwsKeyFileUnwritable() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/no/such/dir/peer.private-key"
            for overwrite in [false, true] {
                let error = #expect(throws: IdentityError.self) {
                    try SecretKey.generate().save(toFile: path, overwrite: overwrite)
                }
                #expect(error?.code == .keyFileUnwritable)
                #expect(error?.message.contains(path) == true)
            }
        }
    }

    // MARK: Environment

    @Test func loadFromEnvironment_readsTheDefaultVariable() throws {
        let key = SecretKey.generate()
        let loaded = try SecretKey.load(environment: ["PEERPOOL_SECRET_KEY": key.hexSeed + "\n"])
        #expect(loaded.id52 == key.id52)
        #expect(SecretKey.defaultEnvironmentVariable == "PEERPOOL_SECRET_KEY")
    }

    @Test func loadFromEnvironment_readsANamedVariable() throws {
        let key = SecretKey.generate()
        let loaded = try SecretKey.load(fromEnvironment: "MY_KEY", environment: ["MY_KEY": key.hexSeed])
        #expect(loaded.id52 == key.id52)
    }

    @Test(arguments: [[:], ["PEERPOOL_SECRET_KEY": ""], ["OTHER": rfcSeed]])
    func loadFromEnvironment_whenUnset_throwsEnvironmentVariableMissing(environment: [String: String]) {
        let error = #expect(throws: IdentityError.self) {
            try SecretKey.load(environment: environment)
        }
        #expect(error?.code == .environmentVariableMissing)
        #expect(error?.message.contains("PEERPOOL_SECRET_KEY") == true)
    }

    @Test func loadFromEnvironment_whenNotAKey_throwsEnvironmentVariableMalformed() {
        let error = #expect(throws: IdentityError.self) {
            try SecretKey.load(environment: ["PEERPOOL_SECRET_KEY": "hunter2"])
        }
        #expect(error?.code == .environmentVariableMalformed)
        #expect(error?.message.contains("PEERPOOL_SECRET_KEY") == true)
        #expect(error?.message.contains("hunter2") == false)
    }
}
