/// BLAKE3 (the hash, and its `derive_key` mode), written from the BLAKE3 paper's reference
/// design because Debian 12 ships no BLAKE3 library. The iroh relay handshake needs exactly one
/// use of it: `derive_key("iroh-relay handshake v1 challenge signature", challenge)`, which the
/// client then signs. Plain, not fast: no SIMD, one chunk at a time; inputs here are tiny.
///
/// Checked against Debian's `b3sum` (hash and `--derive-key`, several lengths across block,
/// chunk and tree boundaries) in `BLAKE3Tests`.
public enum BLAKE3 {
    /// The hash of `input`, `outputLength` bytes long (default 32; longer outputs use the
    /// extendable output, as `b3sum --length`).
    public static func hash(_ input: some Collection<UInt8>, outputLength: Int = 32) -> [UInt8] {
        var hasher = Hasher(key: iv, flags: 0)
        hasher.update(Array(input))
        return hasher.finalize(outputLength: outputLength)
    }

    /// `derive_key(context, material)`: a 32-byte key for the purpose `context` names (a
    /// hard-coded, globally unique string) from `material`.
    public static func deriveKey(context: String, material: some Collection<UInt8>, outputLength: Int = 32) -> [UInt8] {
        var contextHasher = Hasher(key: iv, flags: Flags.deriveKeyContext)
        contextHasher.update(Array(context.utf8))
        let contextKey = words(of: contextHasher.finalize(outputLength: 32))
        var hasher = Hasher(key: contextKey, flags: Flags.deriveKeyMaterial)
        hasher.update(Array(material))
        return hasher.finalize(outputLength: outputLength)
    }

    static let iv: [UInt32] = [
        0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19,
    ]
    private static let permutation = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
    private static let blockLength = 64
    private static let chunkLength = 1024

    enum Flags {
        static let chunkStart: UInt32 = 1
        static let chunkEnd: UInt32 = 2
        static let parent: UInt32 = 4
        static let root: UInt32 = 8
        static let deriveKeyContext: UInt32 = 32
        static let deriveKeyMaterial: UInt32 = 64
    }

    private static func words(of bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: bytes.count, by: 4).map { i in
            UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
        }
    }

    @inline(__always)
    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }

    @inline(__always)
    private static func g(_ s: inout [UInt32], _ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt32, _ y: UInt32) {
        s[a] = s[a] &+ s[b] &+ x
        s[d] = rotr(s[d] ^ s[a], 16)
        s[c] = s[c] &+ s[d]
        s[b] = rotr(s[b] ^ s[c], 12)
        s[a] = s[a] &+ s[b] &+ y
        s[d] = rotr(s[d] ^ s[a], 8)
        s[c] = s[c] &+ s[d]
        s[b] = rotr(s[b] ^ s[c], 7)
    }

    /// The compression function: 16 words of state from a chaining value and one block.
    static func compress(_ cv: [UInt32], _ block: [UInt32], counter: UInt64, blockLength: UInt32, flags: UInt32) -> [UInt32] {
        var s: [UInt32] = cv + [iv[0], iv[1], iv[2], iv[3],
                                UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32),
                                blockLength, flags]
        var m = block
        for round in 0..<7 {
            g(&s, 0, 4, 8, 12, m[0], m[1])
            g(&s, 1, 5, 9, 13, m[2], m[3])
            g(&s, 2, 6, 10, 14, m[4], m[5])
            g(&s, 3, 7, 11, 15, m[6], m[7])
            g(&s, 0, 5, 10, 15, m[8], m[9])
            g(&s, 1, 6, 11, 12, m[10], m[11])
            g(&s, 2, 7, 8, 13, m[12], m[13])
            g(&s, 3, 4, 9, 14, m[14], m[15])
            if round < 6 { m = permutation.map { m[$0] } }
        }
        for i in 0..<8 {
            s[i] ^= s[i + 8]
            s[i + 8] ^= cv[i]
        }
        return s
    }

    /// What the last compression of a node needs; kept uncompressed until we know whether the
    /// node is the root (which takes the ROOT flag and may be extended).
    private struct Output {
        var cv: [UInt32]
        var block: [UInt32]
        var counter: UInt64
        var blockLength: UInt32
        var flags: UInt32

        var chainingValue: [UInt32] {
            Array(compress(cv, block, counter: counter, blockLength: blockLength, flags: flags).prefix(8))
        }

        func rootBytes(_ length: Int) -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(length)
            var blockCounter: UInt64 = 0
            while out.count < length {
                let words = compress(cv, block, counter: blockCounter, blockLength: blockLength, flags: flags | Flags.root)
                for word in words {
                    for shift in stride(from: 0, to: 32, by: 8) where out.count < length {
                        out.append(UInt8(truncatingIfNeeded: word >> UInt32(shift)))
                    }
                }
                blockCounter += 1
            }
            return out
        }
    }

    private struct ChunkState {
        var cv: [UInt32]
        var chunkCounter: UInt64
        var block: [UInt8] = []
        var blocksCompressed = 0
        let flags: UInt32

        var length: Int { blocksCompressed * BLAKE3.blockLength + block.count }

        private var startFlag: UInt32 { blocksCompressed == 0 ? Flags.chunkStart : 0 }

        private static func blockWords(_ bytes: [UInt8]) -> [UInt32] {
            words(of: bytes + [UInt8](repeating: 0, count: BLAKE3.blockLength - bytes.count))
        }

        mutating func update(_ input: ArraySlice<UInt8>) {
            var input = input
            while !input.isEmpty {
                // Compress a full block only once more input shows it is not the chunk's last.
                if block.count == BLAKE3.blockLength {
                    cv = Array(compress(cv, Self.blockWords(block), counter: chunkCounter,
                                        blockLength: UInt32(BLAKE3.blockLength), flags: flags | startFlag).prefix(8))
                    blocksCompressed += 1
                    block.removeAll(keepingCapacity: true)
                }
                let take = min(BLAKE3.blockLength - block.count, input.count)
                block += input.prefix(take)
                input = input.dropFirst(take)
            }
        }

        var output: Output {
            Output(cv: cv, block: Self.blockWords(block), counter: chunkCounter,
                   blockLength: UInt32(block.count), flags: flags | startFlag | Flags.chunkEnd)
        }
    }

    private struct Hasher {
        let key: [UInt32]
        let flags: UInt32
        var chunk: ChunkState
        /// One chaining value per tree level at most: 54 levels cover 2^64 bytes.
        var stack: [[UInt32]] = []

        init(key: [UInt32], flags: UInt32) {
            self.key = key
            self.flags = flags
            self.chunk = ChunkState(cv: key, chunkCounter: 0, flags: flags)
        }

        private func parentOutput(_ left: [UInt32], _ right: [UInt32]) -> Output {
            Output(cv: key, block: left + right, counter: 0, blockLength: UInt32(BLAKE3.blockLength), flags: flags | Flags.parent)
        }

        mutating func update(_ input: [UInt8]) {
            var input = input[...]
            while !input.isEmpty {
                if chunk.length == BLAKE3.chunkLength {
                    var newCV = chunk.output.chainingValue
                    var totalChunks = chunk.chunkCounter + 1
                    // Merge completed subtrees: one merge per trailing zero bit of the chunk count.
                    while totalChunks & 1 == 0 {
                        newCV = parentOutput(stack.removeLast(), newCV).chainingValue
                        totalChunks >>= 1
                    }
                    stack.append(newCV)
                    chunk = ChunkState(cv: key, chunkCounter: chunk.chunkCounter + 1, flags: flags)
                }
                let take = min(BLAKE3.chunkLength - chunk.length, input.count)
                chunk.update(input.prefix(take))
                input = input.dropFirst(take)
            }
        }

        func finalize(outputLength: Int) -> [UInt8] {
            var output = chunk.output
            for left in stack.reversed() {
                output = parentOutput(left, output.chainingValue)
            }
            return output.rootBytes(outputLength)
        }
    }
}
