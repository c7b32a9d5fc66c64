/// The few parts of a DNS message (RFC 1035) discovery needs: a TXT query, answers with their
/// TTLs, and the reply packet pkarr signs. Bounded everywhere: names at most 255 bytes, at most
/// ``maximumRecords`` records per section, at most 16 compression pointers per name.
public struct DNSMessage: Sendable, Equatable {
    public static let typeTXT: UInt16 = 16
    public static let typeOPT: UInt16 = 41
    public static let classIN: UInt16 = 1
    public static let maximumRecords = 256

    public var id: UInt16
    /// QR, opcode, AA, TC, RD, RA, rcode as in the header's second word.
    public var flags: UInt16
    public var questions: [Question]
    public var answers: [Record]

    public struct Question: Sendable, Equatable {
        public var name: String
        public var type: UInt16
        public var recordClass: UInt16
        public init(name: String, type: UInt16, recordClass: UInt16 = DNSMessage.classIN) {
            self.name = name
            self.type = type
            self.recordClass = recordClass
        }
    }

    public struct Record: Sendable, Equatable {
        public var name: String
        public var type: UInt16
        public var recordClass: UInt16
        public var ttl: UInt32
        public var data: [UInt8]

        public init(name: String, type: UInt16, recordClass: UInt16 = DNSMessage.classIN, ttl: UInt32, data: [UInt8]) {
            self.name = name
            self.type = type
            self.recordClass = recordClass
            self.ttl = ttl
            self.data = data
        }

        /// A TXT record holding one value, split into 255-byte character-strings.
        public static func txt(name: String, ttl: UInt32, _ value: String) -> Record {
            var data: [UInt8] = []
            var bytes = Array(value.utf8)[...]
            repeat {
                let piece = bytes.prefix(255)
                data.append(UInt8(piece.count))
                data += piece
                bytes = bytes.dropFirst(piece.count)
            } while !bytes.isEmpty
            return Record(name: name, type: DNSMessage.typeTXT, ttl: ttl, data: data)
        }

        /// A TXT record's character-strings joined, as iroh reads them (one attribute per record).
        public func txtValue() throws(DiscoveryError) -> String {
            var bytes: [UInt8] = []
            var index = 0
            while index < data.count {
                let length = Int(data[index])
                guard index + 1 + length <= data.count else {
                    throw DiscoveryError(.dnsMalformed, "a TXT record for \(name) has a character-string running past its data")
                }
                bytes += data[(index + 1)..<(index + 1 + length)]
                index += 1 + length
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw DiscoveryError(.badIrohRecord, "a TXT record for \(name) is not UTF-8")
            }
            return text
        }
    }

    public var rcode: UInt16 { flags & 0x000f }
    public var isTruncated: Bool { flags & 0x0200 != 0 }
    public var isResponse: Bool { flags & 0x8000 != 0 }

    public init(id: UInt16, flags: UInt16, questions: [Question] = [], answers: [Record] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
    }

    /// A recursive TXT query with an EDNS(0) record offering 1232-byte UDP answers.
    public static func txtQuery(id: UInt16, name: String) -> DNSMessage {
        DNSMessage(id: id, flags: 0x0100, questions: [Question(name: name, type: typeTXT)])
    }

    // MARK: Encoding

    /// The wire form. Answers whose name equals the first answer's point back to it (the only
    /// compression done; pkarr packets repeat one name).
    public func encoded(ednsUDPSize: UInt16? = nil) throws(DiscoveryError) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xff)) }
        func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xffff)) }
        u16(id); u16(flags)
        u16(UInt16(questions.count)); u16(UInt16(answers.count)); u16(0); u16(ednsUDPSize == nil ? 0 : 1)
        var firstNameOffset: (name: String, offset: Int)?
        func name(_ name: String) throws(DiscoveryError) {
            if let first = firstNameOffset, first.name.lowercased() == name.lowercased(), first.offset < 0x3fff {
                u16(0xc000 | UInt16(first.offset))
                return
            }
            if firstNameOffset == nil { firstNameOffset = (name, out.count) }
            out += try Self.encodeName(name)
        }
        for question in questions {
            try name(question.name)
            u16(question.type); u16(question.recordClass)
        }
        for record in answers {
            try name(record.name)
            u16(record.type); u16(record.recordClass); u32(record.ttl)
            guard record.data.count <= 0xffff else {
                throw DiscoveryError(.dnsMalformed, "record data of \(record.data.count) bytes for \(record.name) is over 65535")
            }
            u16(UInt16(record.data.count))
            out += record.data
        }
        if let ednsUDPSize {
            out.append(0); u16(Self.typeOPT); u16(ednsUDPSize); u32(0); u16(0)
        }
        return out
    }

    static func encodeName(_ name: String) throws(DiscoveryError) -> [UInt8] {
        var out: [UInt8] = []
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        if !trimmed.isEmpty {
            for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
                let bytes = Array(label.utf8)
                guard (1...63).contains(bytes.count) else {
                    throw DiscoveryError(.badOrigin, "the DNS name \"\(name)\" has a label of \(bytes.count) bytes; labels have 1 to 63")
                }
                out.append(UInt8(bytes.count))
                out += bytes
            }
        }
        out.append(0)
        guard out.count <= 255 else {
            throw DiscoveryError(.badOrigin, "the DNS name \"\(name.prefix(80))…\" is \(out.count) bytes long; names have at most 255")
        }
        return out
    }

    // MARK: Decoding

    /// Parses a whole message; authority and additional sections are skipped. Throws
    /// ``DiscoveryError/Code/dnsMalformed`` naming the offset of what is wrong.
    public init(decoding bytes: some Collection<UInt8>) throws(DiscoveryError) {
        var reader = Reader(bytes: Array(bytes))
        id = try reader.u16()
        flags = try reader.u16()
        let qd = Int(try reader.u16()), an = Int(try reader.u16())
        _ = try reader.u16(); _ = try reader.u16()
        guard qd <= Self.maximumRecords, an <= Self.maximumRecords else {
            throw DiscoveryError(.dnsMalformed, "a DNS message claims \(qd) questions and \(an) answers; at most \(Self.maximumRecords) each are read")
        }
        questions = []
        answers = []
        for _ in 0..<qd {
            questions.append(Question(name: try reader.name(), type: try reader.u16(), recordClass: try reader.u16()))
        }
        for _ in 0..<an {
            let name = try reader.name()
            let type = try reader.u16(), recordClass = try reader.u16(), ttl = try reader.u32()
            let length = Int(try reader.u16())
            answers.append(Record(name: name, type: type, recordClass: recordClass, ttl: ttl, data: try reader.bytes(length)))
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func u16() throws(DiscoveryError) -> UInt16 {
            let b = try self.bytes(2)
            return UInt16(b[0]) << 8 | UInt16(b[1])
        }

        mutating func u32() throws(DiscoveryError) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        mutating func bytes(_ count: Int) throws(DiscoveryError) -> [UInt8] {
            guard count >= 0, index + count <= bytes.count else {
                throw DiscoveryError(.dnsMalformed, "a DNS message of \(bytes.count) bytes ends inside a field at offset \(index)")
            }
            defer { index += count }
            return Array(bytes[index..<(index + count)])
        }

        /// A name, following compression pointers (at most 16, each pointing backwards).
        mutating func name() throws(DiscoveryError) -> String {
            var labels: [String] = []
            var position = index
            var jumped = false
            var pointers = 0
            var length = 0
            while true {
                guard position < bytes.count else {
                    throw DiscoveryError(.dnsMalformed, "a DNS name runs past the end of the message at offset \(position)")
                }
                let byte = bytes[position]
                if byte & 0xc0 == 0xc0 {
                    guard position + 1 < bytes.count else {
                        throw DiscoveryError(.dnsMalformed, "a DNS compression pointer is cut off at offset \(position)")
                    }
                    let target = Int(byte & 0x3f) << 8 | Int(bytes[position + 1])
                    pointers += 1
                    guard pointers <= 16, target < position else {
                        throw DiscoveryError(.dnsMalformed, "a DNS compression pointer at offset \(position) loops or points forward")
                    }
                    if !jumped { index = position + 2 }
                    jumped = true
                    position = target
                } else if byte & 0xc0 != 0 {
                    throw DiscoveryError(.dnsMalformed, "a DNS label at offset \(position) has reserved type bits \(byte >> 6)")
                } else if byte == 0 {
                    if !jumped { index = position + 1 }
                    return labels.joined(separator: ".")
                } else {
                    let count = Int(byte)
                    length += count + 1
                    guard position + 1 + count <= bytes.count, length <= 255 else {
                        throw DiscoveryError(.dnsMalformed, "a DNS name at offset \(position) is cut off or over 255 bytes")
                    }
                    labels.append(String(decoding: bytes[(position + 1)...(position + count)], as: UTF8.self))
                    position += 1 + count
                }
            }
        }
    }
}
