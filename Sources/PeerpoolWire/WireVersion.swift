/// The wire protocol's version: byte 0 of every header. docs/wire-protocol.md describes version 1;
/// a peer speaking another version is answered `unsupported_version`, never guessed at.
public enum WireVersion {
    public static let current: UInt8 = 1
}
