import CNGTCP2
import PeerpoolIdentity

/// One local identity in GnuTLS form: its ed25519 private key, its raw public key (RFC 7250, the
/// form iroh and fastn peers require) and, for peers that negotiate no certificate type, a
/// self-signed X.509 certificate carrying the same key.
///
/// Ownership: `rawPublicKey` and `certificate` are allocated here and filled by
/// `gnutls_pcert_import_rawpk_raw` / `gnutls_pcert_import_x509_raw`; `privateKey` comes from
/// `gnutls_privkey_init`. All are freed in `deinit` and nowhere else. GnuTLS only borrows them
/// (the certificate retrieve callback hands out pointers it must not free), so an identity must
/// outlive every session of its endpoint: `TLSContext` keeps it. Immutable after `init`, so it
/// is safe to read from any thread.
final class TLSIdentity: @unchecked Sendable {
    let id52: ID52
    /// The SubjectPublicKeyInfo of our key, exactly 44 bytes, as a raw-public-key pcert.
    let rawPublicKey: UnsafeMutablePointer<gnutls_pcert_st>
    /// The self-signed X.509 certificate; nil when the endpoint offers no X.509 fallback.
    let certificate: UnsafeMutablePointer<gnutls_pcert_st>?
    let privateKey: gnutls_privkey_t

    /// DER of an ed25519 SubjectPublicKeyInfo up to the key: SEQUENCE { SEQUENCE { OID 1.3.101.112 },
    /// BIT STRING (0 unused bits) }; the 32 key bytes follow (RFC 8410).
    static let ed25519SPKIPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// The SubjectPublicKeyInfo DER of `id52`'s key: what a raw-public-key peer presents.
    static func subjectPublicKeyInfo(of id52: ID52) -> [UInt8] {
        ed25519SPKIPrefix + id52.publicKeyBytes
    }

    /// The ed25519 key a raw-public-key peer presented, if `spki` is exactly an ed25519
    /// SubjectPublicKeyInfo (44 bytes); nil for anything else.
    static func ed25519Key(fromSubjectPublicKeyInfo spki: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard spki.count == ed25519SPKIPrefix.count + 32, spki.prefix(ed25519SPKIPrefix.count).elementsEqual(ed25519SPKIPrefix)
        else { return nil }
        return Array(spki.suffix(32))
    }

    init(secretKey: SecretKey, x509Fallback: Bool) throws {
        self.id52 = secretKey.id52

        var key: gnutls_privkey_t?
        guard gnutls_privkey_init(&key) == 0, let key else {
            throw QUICError(.internal, "gnutls_privkey_init failed")
        }
        var publicKey = secretKey.id52.publicKeyBytes
        var seed = Array(secretKey.privateKey.rawRepresentation)
        defer { for i in seed.indices { seed[i] = 0 } }
        let krv = publicKey.withUnsafeMutableBufferPointer { x in
            seed.withUnsafeMutableBufferPointer { k in
                var xDatum = gnutls_datum_t(data: x.baseAddress, size: UInt32(x.count))
                var kDatum = gnutls_datum_t(data: k.baseAddress, size: UInt32(k.count))
                return gnutls_privkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &xDatum, nil, &kDatum)
            }
        }
        guard krv == 0 else {
            gnutls_privkey_deinit(key)
            throw QUICError(.internal, "GnuTLS refused the private key of \(secretKey.id52): \(gnutlsMessage(krv))")
        }

        let raw = UnsafeMutablePointer<gnutls_pcert_st>.allocate(capacity: 1)
        raw.initialize(to: gnutls_pcert_st())
        var spki = Self.subjectPublicKeyInfo(of: secretKey.id52)
        let rrv = spki.withUnsafeMutableBufferPointer { bytes in
            var datum = gnutls_datum_t(data: bytes.baseAddress, size: UInt32(bytes.count))
            return gnutls_pcert_import_rawpk_raw(raw, &datum, GNUTLS_X509_FMT_DER, 0, 0)
        }
        guard rrv == 0 else {
            raw.deallocate()
            gnutls_privkey_deinit(key)
            throw QUICError(.internal, "GnuTLS refused the raw public key of \(secretKey.id52): \(gnutlsMessage(rrv))")
        }

        var certificate: UnsafeMutablePointer<gnutls_pcert_st>?
        if x509Fallback {
            do {
                certificate = try Self.makeCertificate(secretKey: secretKey)
            } catch {
                gnutls_pcert_deinit(raw)
                raw.deallocate()
                gnutls_privkey_deinit(key)
                throw error
            }
        }
        self.rawPublicKey = raw
        self.certificate = certificate
        self.privateKey = key
    }

    /// The self-signed X.509 pcert of `secretKey`, checked to carry its key.
    private static func makeCertificate(secretKey: SecretKey) throws -> UnsafeMutablePointer<gnutls_pcert_st> {
        let built = try IdentityCertificate(secretKey: secretKey)
        let pcert = UnsafeMutablePointer<gnutls_pcert_st>.allocate(capacity: 1)
        pcert.initialize(to: gnutls_pcert_st())
        var der = built.certificateDER
        let rv = der.withUnsafeMutableBufferPointer { bytes in
            var datum = gnutls_datum_t(data: bytes.baseAddress, size: UInt32(bytes.count))
            return gnutls_pcert_import_x509_raw(pcert, &datum, GNUTLS_X509_FMT_DER, 0)
        }
        guard rv == 0 else {
            pcert.deallocate()
            throw QUICError(.internal, "GnuTLS refused the certificate of \(secretKey.id52): \(gnutlsMessage(rv))")
        }
        // GnuTLS 3.7 does not check that an ed25519 key matches its certificate; we do, on the
        // raw bytes (re-validating our own key as a curve point would cost ~0.2 ms per identity).
        var curve = GNUTLS_ECC_CURVE_INVALID
        var x = gnutls_datum_t()
        let certified: [UInt8]? = gnutls_pubkey_export_ecc_raw(pcert.pointee.pubkey, &curve, &x, nil) == 0 && x.data != nil
            ? Array(UnsafeBufferPointer(start: x.data, count: Int(x.size))) : nil
        pp_gnutls_free(x.data)
        guard curve == GNUTLS_ECC_CURVE_ED25519, certified == secretKey.id52.publicKeyBytes else {
            gnutls_pcert_deinit(pcert)
            pcert.deallocate()
            throw QUICError(.noIdentity, "the certificate built for \(secretKey.id52) does not carry its key")
        }
        return pcert
    }

    deinit {
        gnutls_privkey_deinit(privateKey)
        gnutls_pcert_deinit(rawPublicKey)
        rawPublicKey.deallocate()
        if let certificate {
            gnutls_pcert_deinit(certificate)
            certificate.deallocate()
        }
    }
}

/// GnuTLS's text for an error code.
func gnutlsMessage(_ code: CInt) -> String {
    guard let text = gnutls_strerror(code) else { return "GnuTLS error \(code)" }
    return String(cString: text)
}
