import Foundation
import PeerpoolTestSupport
import Testing

@testable import PeerpoolIdentity

@Suite struct IdentityCertificateTests {
    static let openSSLPath = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs openssl (at most a minute) and returns its standard output and error; fails the test
    /// on a non-zero exit.
    static func openSSL(_ arguments: [String]) async throws -> String {
        var command = TestChild.Command.program(try #require(openSSLPath), arguments)
        command.standardInput = .null
        command.standardError = .standardOutput
        let output = try await TestChild.run(command, within: .seconds(60))
        #expect(output.status == 0, "openssl \(arguments.joined(separator: " ")): \(output.stdout)")
        return output.stdout
    }

    @Test func certificate_roundTripsTheID52() throws {
        let key = SecretKey.generate()
        let certificate = try IdentityCertificate(secretKey: key)
        #expect(certificate.id52 == key.id52)
        #expect(!certificate.certificateDER.isEmpty)
        #expect(try IdentityCertificate.publicKeyID52(fromCertificateDER: certificate.certificateDER) == key.id52)
    }

    @Test func certificate_containsTheID52AsNames() throws {
        let key = SecretKey.generate()
        let der = try IdentityCertificate(secretKey: key).certificateDER
        // CN and dNSName are IA5/UTF8 strings, so the ID52's ASCII appears verbatim: twice as CN
        // (issuer and subject), once as the subjectAltName.
        let name = Array(key.id52.description.utf8)
        let occurrences = (0...(der.count - name.count)).filter { Array(der[$0..<($0 + name.count)]) == name }
        #expect(occurrences.count == 3)
    }

    @Test func certificates_haveRandomSerialNumbers() throws {
        let key = SecretKey.generate()
        let first = try IdentityCertificate(secretKey: key).certificateDER
        let second = try IdentityCertificate(secretKey: key).certificateDER
        #expect(first != second)
    }

    @Test func privateKeyDER_isPKCS8Ed25519OfTheSeed() throws {
        let key = SecretKey.generate()
        let der = try IdentityCertificate(secretKey: key).privateKeyDER
        // RFC 8410 section 7: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
        let prefix = try Hex.decode("302e020100300506032b657004220420")
        #expect(Array(der.prefix(prefix.count)) == prefix)
        #expect(Array(der.dropFirst(prefix.count)) == (try Hex.decode(key.hexSeed)))
    }

    @Test func publicKeyID52_whenNotACertificate_throwsCertificate() {
        for der in [[], [0x30, 0x03, 0x02, 0x01, 0x00], Array("hello".utf8)] as [[UInt8]] {
            let error = #expect(throws: IdentityError.self) {
                try IdentityCertificate.publicKeyID52(fromCertificateDER: der)
            }
            #expect(error?.code == .certificate)
        }
    }

    @Test func publicKeyID52_whenTruncated_throwsCertificate() throws {
        let der = try IdentityCertificate(secretKey: SecretKey.generate()).certificateDER
        #expect(throws: IdentityError(code: .certificate, message: "")) {
            try IdentityCertificate.publicKeyID52(fromCertificateDER: Array(der.dropLast()))
        }
    }

    @Test(.enabled(if: openSSLPath != nil))
    func openSSL_parsesTheCertificateAndKey() async throws {
        try await withTemporaryDirectory { directory in
            let key = SecretKey.generate()
            let certificate = try IdentityCertificate(secretKey: key)
            let certificatePath = directory + "/cert.der"
            let keyPath = directory + "/key.der"
            try Data(certificate.certificateDER).write(to: URL(fileURLWithPath: certificatePath))
            try Data(certificate.privateKeyDER).write(to: URL(fileURLWithPath: keyPath))

            let text = try await Self.openSSL(["x509", "-inform", "DER", "-in", certificatePath, "-noout", "-text"])
            #expect(text.contains("Version: 3"))
            #expect(text.contains("ED25519"))
            #expect(text.contains("Subject: CN = \(key.id52)"))
            #expect(text.contains("Issuer: CN = \(key.id52)"))
            #expect(text.contains("DNS:\(key.id52)"))

            // The key file's public half is the certificate's key.
            let publicKeyPath = directory + "/public.der"
            _ = try await Self.openSSL([
                "pkey", "-inform", "DER", "-in", keyPath, "-pubout", "-outform", "DER", "-out", publicKeyPath,
            ])
            let publicKeyDER = try Data(contentsOf: URL(fileURLWithPath: publicKeyPath))
            #expect(Array(publicKeyDER.suffix(32)) == key.id52.publicKeyBytes)

            // The self-signature verifies.
            let pemPath = directory + "/cert.pem"
            _ = try await Self.openSSL(["x509", "-inform", "DER", "-in", certificatePath, "-out", pemPath])
            let verified = try await Self.openSSL(["verify", "-check_ss_sig", "-CAfile", pemPath, pemPath])
            #expect(verified.contains("OK"))
        }
    }

    @Test(.enabled(if: openSSLPath != nil))
    func publicKeyID52_whenKeyIsNotEd25519_throwsCertificate() async throws {
        try await withTemporaryDirectory { directory in
            let certificatePath = directory + "/p256.der"
            _ = try await Self.openSSL([
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", directory + "/p256.key", "-subj", "/CN=p256", "-days", "1",
                "-outform", "DER", "-out", certificatePath,
            ])
            let der = Array(try Data(contentsOf: URL(fileURLWithPath: certificatePath)))
            let error = #expect(throws: IdentityError.self) {
                try IdentityCertificate.publicKeyID52(fromCertificateDER: der)
            }
            #expect(error?.code == .certificate)
            #expect(error?.message.contains("ed25519") == true)
        }
    }
}
