import PeerpoolErrors
import PeerpoolIdentity

/// Any failure of discovery: a stable snake_case ``Code`` to match on and a sentence that says
/// what arrived and what to do. Equality compares only the code.
public typealias DiscoveryError = LayerError<DiscoveryLayer>

/// Marks DiscoveryError's errors (see ``LayerError``).
public enum DiscoveryLayer {}

extension ErrorCode where Domain == DiscoveryError {
    /// Text that is not z-base-32 of 32 bytes (wrong length, character, trailing bits).
    public static let badZBase32 = Self("bad_zbase32")
    /// A pkarr packet shorter than its fixed header or with a DNS part over 1000 bytes.
    public static let pkarrMalformed = Self("pkarr_malformed")
    /// A pkarr packet for another key than the one asked about.
    public static let pkarrWrongKey = Self("pkarr_wrong_key")
    /// A pkarr packet whose signature does not verify with its key.
    public static let pkarrBadSignature = Self("pkarr_bad_signature")
    /// Records that do not fit in a pkarr packet (its DNS part is at most 1000 bytes).
    public static let pkarrTooLarge = Self("pkarr_too_large")
    /// A pkarr relay answered a PUT or GET with an error status (400 bad packet, 409 older
    /// than what it holds, 413 too large, 429 rate-limited); the message carries status and body.
    public static let pkarrRelayRefused = Self("pkarr_relay_refused")
    /// A pkarr relay could not be reached or did not answer within the timeout.
    public static let pkarrRelayFailed = Self("pkarr_relay_failed")
    /// A DNS message that cannot be parsed (truncated, bad name, pointer loop).
    public static let dnsMalformed = Self("dns_malformed")
    /// The name server answered with an error code other than NXDOMAIN (SERVFAIL, REFUSED).
    public static let dnsServerFailure = Self("dns_server_failure")
    /// No answer from any name server within the timeout.
    public static let dnsTimeout = Self("dns_timeout")
    /// The answer was truncated (TC bit): too large for UDP.
    public static let dnsTruncated = Self("dns_truncated")
    /// No name server configured (empty or missing `/etc/resolv.conf`).
    public static let noNameServer = Self("no_name_server")
    /// An `_iroh` TXT value that is not `addr=ip:port ...` or `relay=URL` or is over its limits.
    public static let badIrohRecord = Self("bad_iroh_record")
    /// An origin that is not a valid DNS name.
    public static let badOrigin = Self("bad_origin")
    /// A relay protocol frame or handshake message that cannot be parsed or is over 64 KiB.
    public static let relayFrameMalformed = Self("relay_frame_malformed")
    /// The relay refused the handshake; the message carries its reason.
    public static let relayRefused = Self("relay_refused")
    /// The relay did not finish the handshake or answer a ping in time.
    public static let relayTimeout = Self("relay_timeout")
    /// The relay announced a restart (frame 12); the client reconnects when it said to.
    public static let relayRestarting = Self("relay_restarting")
    /// The relay client was stopped by its owner.
    public static let relayStopped = Self("relay_stopped")
}
