/// How a peer presented its ed25519 key in the TLS handshake.
public enum QUICCertificateType: String, Sendable, CustomStringConvertible {
    /// RFC 7250 raw public key: the key's SubjectPublicKeyInfo and nothing else. What iroh and
    /// fastn peers use, and what peerpool offers first.
    case rawPublicKey = "raw_public_key"
    /// A self-signed X.509 certificate carrying the key: the fallback for peers that negotiate
    /// no certificate type (older peerpool, aioquic). See `QUICConfiguration.allowsX509Fallback`.
    case x509

    public var description: String { rawValue }
}
