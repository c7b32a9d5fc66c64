import BigInt
import Foundation
import Synchronization

/// RFC 8032 section 5.1.3 point decoding, reduced to "does it succeed".
///
/// swift-crypto accepts any 32 bytes as a `Curve25519.Signing.PublicKey`; bytes that are not a
/// curve point only fail later, when every signature check returns false. Checking at parse time
/// turns a mistyped ID52 into an error that says so, instead of a peer that can never authenticate.
/// The check costs about 0.2 ms in a release build (2.5 ms in debug), so keys that passed are
/// remembered: a server sees the same few thousand peers again and again, and the supervisor,
/// the worker and the pool each read the same ID52 once per request.
enum Ed25519PointValidation {
    /// Keys that passed, most `rememberedLimit`; forgotten all at once when full (cheap, and a
    /// miss only costs one more check).
    private static let remembered = Mutex<Set<[UInt8]>>([])
    static let rememberedLimit = 65_536

    /// The field prime 2^255 - 19.
    static let p: BigUInt = (BigUInt(1) << 255) - 19

    /// The curve constant d = -121665 / 121666 mod p (inverse by Fermat: a^(p-2)).
    static let d: BigUInt = ((p - 121_665) * BigUInt(121_666).power(p - 2, modulus: p)) % p

    /// Euler's criterion exponent: a^((p-1)/2) is 1 for non-zero squares and p-1 otherwise.
    static let eulerExponent: BigUInt = (p - 1) / 2

    /// 2^255 - 1, the low 255 bits.
    private static let low255Bits: BigUInt = (BigUInt(1) << 255) - 1

    /// Whether `bytes` is the RFC 8032 encoding of a point on edwards25519: y little-endian in
    /// the low 255 bits, the sign of x in the top bit.
    static func isValidPublicKey(_ bytes: some Collection<UInt8>) -> Bool {
        let key = Array(bytes)
        guard key.count == 32 else {
            return false
        }
        if remembered.withLock({ $0.contains(key) }) { return true }
        guard isOnCurve(key) else { return false }
        remembered.withLock { set in
            if set.count >= rememberedLimit { set.removeAll(keepingCapacity: true) }
            set.insert(key)
        }
        return true
    }

    private static func isOnCurve(_ key: [UInt8]) -> Bool {
        var littleEndian = key
        let xIsOdd = littleEndian[31] & 0x80 != 0
        littleEndian[31] &= 0x7f
        let y = BigUInt(Data(littleEndian.reversed()))
        // Step 1: a non-canonical y (p ... 2^255-1) is rejected.
        guard y < p else {
            return false
        }
        // Step 2: x^2 = u / v with u = y^2 - 1, v = d y^2 + 1.
        let ySquared = reduce(y * y)
        let u = reduce(ySquared + p - 1)
        let v = reduce(d * ySquared + 1)
        // Step 4: x = 0 has no negative, so the sign bit must be clear.
        if u == 0 {
            return !xIsOdd
        }
        // v is never 0, because -1/d is not a square mod p; guard anyway rather than divide by 0.
        guard v != 0 else {
            return false
        }
        // Step 3: u / v is a square exactly when u * v = (u / v) * v^2 is, which avoids an inversion.
        return eulerCriterion(reduce(u * v)) == 1
    }

    /// a^((p-1)/2) mod p for a < p, the same value as `a.power(eulerExponent, modulus: p)` in
    /// about half the multiplications and none of the divisions. The exponent is
    /// 2^254 - 10 = (2^250 - 1) * 2^4 + 6; a^(2^250 - 1) uses the addition chain of ref10's
    /// `fe_pow22523` (254 squarings, 13 multiplications in all).
    static func eulerCriterion(_ a: BigUInt) -> BigUInt {
        let a2 = square(a)
        let a4 = square(a2)
        let a6 = multiply(a2, a4)
        let a9 = multiply(a, square(a4))
        let a11 = multiply(a2, a9)
        let a_5_0 = multiply(a9, square(a11))  // a^(2^5 - 1)
        let a_10_0 = multiply(square(a_5_0, times: 5), a_5_0)
        let a_20_0 = multiply(square(a_10_0, times: 10), a_10_0)
        let a_40_0 = multiply(square(a_20_0, times: 20), a_20_0)
        let a_50_0 = multiply(square(a_40_0, times: 10), a_10_0)
        let a_100_0 = multiply(square(a_50_0, times: 50), a_50_0)
        let a_200_0 = multiply(square(a_100_0, times: 100), a_100_0)
        let a_250_0 = multiply(square(a_200_0, times: 50), a_50_0)
        return multiply(square(a_250_0, times: 4), a6)
    }

    private static func multiply(_ a: BigUInt, _ b: BigUInt) -> BigUInt {
        reduce(a * b)
    }

    private static func square(_ a: BigUInt, times count: Int = 1) -> BigUInt {
        var result = a
        for _ in 0..<count {
            result = reduce(result * result)
        }
        return result
    }

    /// x mod p without division: 2^255 = 19 (mod p), so the bits above 255 fold back in times 19.
    static func reduce(_ x: BigUInt) -> BigUInt {
        var x = x
        while true {
            let high = x >> 255
            if high.isZero {
                break
            }
            x = (x & low255Bits) + high.multiplied(byWord: 19)
        }
        return x >= p ? x - p : x
    }
}
