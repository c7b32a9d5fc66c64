import Crypto
import Foundation
import SwiftASN1
import X509

/// The self-signed certificate a peer presents in the TLS handshake of a QUIC connection when
/// the other side negotiates no certificate type (the X.509 fallback: older peerpool, aioquic).
/// Peers that support RFC 7250, iroh and fastn among them, get the bare key instead.
///
/// No CA is involved: a peer is its key. The handshake proves possession of the key (TLS 1.3
/// CertificateVerify), and the other side compares the certificate's ed25519 key with the ID52 it
/// expected (``publicKeyID52(fromCertificateDER:)``). The names and dates are there for TLS stacks
/// that parse them; the ID52 doubles as a DNS name because it is a valid 52-character label.
public struct IdentityCertificate: Sendable {
    /// The X.509 v3 certificate, DER.
    public let certificateDER: [UInt8]
    /// The ed25519 secret key as PKCS#8 DER, the form GnuTLS's
    /// `gnutls_certificate_set_x509_key_mem2(..., GNUTLS_X509_FMT_DER)` loads.
    public let privateKeyDER: [UInt8]
    public let id52: ID52

    /// Valid from an hour ago, so peers whose clocks run behind accept it.
    static let backdating: TimeInterval = 60 * 60
    /// Effectively forever: the key, not the date, is what peers check, and identities are long-lived.
    static let lifetime: TimeInterval = 100 * 365.25 * 24 * 60 * 60

    /// Throws ``IdentityError/Code/certificate`` if swift-certificates cannot build or serialize it.
    public init(secretKey: SecretKey) throws {
        try self.init(secretKey: secretKey, now: Date())
    }

    init(secretKey: SecretKey, now: Date) throws {
        let name = secretKey.id52.description
        let privateKey = Certificate.PrivateKey(secretKey.privateKey)
        do {
            let distinguishedName = try DistinguishedName {
                CommonName(name)
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.dnsName(name)])
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: privateKey.publicKey,
                notValidBefore: now - Self.backdating,
                notValidAfter: now + Self.lifetime,
                issuer: distinguishedName,
                subject: distinguishedName,
                signatureAlgorithm: .ed25519,
                extensions: extensions,
                issuerPrivateKey: privateKey
            )
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            self.certificateDER = serializer.serializedBytes
            self.privateKeyDER = try privateKey.serializeAsPEM().derBytes
        } catch {
            throw IdentityError(
                code: .certificate,
                message: "Could not build the certificate for \(name): \(error).",
                underlying: error
            )
        }
        self.id52 = secretKey.id52
    }

    /// The ID52 of the ed25519 key in a DER certificate, typically the one a peer presented.
    ///
    /// Does not check the certificate's signature, names or dates: none of them is evidence of
    /// identity here, only the key is (see the type's documentation). Throws
    /// ``IdentityError/Code/certificate`` for unparsable or non-ed25519 certificates and
    /// ``IdentityError/Code/notAnEd25519Key`` if the key is not a curve point.
    public static func publicKeyID52(fromCertificateDER der: [UInt8]) throws -> ID52 {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: der)
        } catch {
            throw IdentityError(
                code: .certificate,
                message: "The peer's certificate (\(der.count) bytes) is not a valid DER X.509 certificate: \(error).",
                underlying: error
            )
        }
        guard let publicKey = Curve25519.Signing.PublicKey(certificate.publicKey) else {
            throw IdentityError(
                code: .certificate,
                message: "The peer's certificate holds a \(certificate.publicKey) key, "
                    + "but peers are identified by ed25519 keys."
            )
        }
        return try ID52(rawPublicKey: publicKey.rawRepresentation)
    }
}
