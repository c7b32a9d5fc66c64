import Foundation
import PeerpoolIdentity

/// PEM text as Python's `cryptography` reads it: base64 in 64-character lines.
public func pem(_ label: String, _ der: [UInt8]) -> String {
    let base64 = Data(der).base64EncodedString()
    var text = "-----BEGIN \(label)-----\n"
    var start = base64.startIndex
    while start < base64.endIndex {
        let end = base64.index(start, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
        text += base64[start..<end] + "\n"
        start = end
    }
    return text + "-----END \(label)-----\n"
}

/// The self-signed certificate and PKCS#8 key of `identity` as PEM.
public func pem(for identity: SecretKey) throws -> (certificate: String, key: String) {
    let certificate = try IdentityCertificate(secretKey: identity)
    return (pem("CERTIFICATE", certificate.certificateDER), pem("PRIVATE KEY", certificate.privateKeyDER))
}
