import Foundation
import PeerpoolErrors
import Testing

private struct SampleError: PeerpoolError {
    typealias Code = ErrorCode<SampleError>
    let code: Code
    let message: String
    let location: PeerpoolErrors.SourceLocation

    init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.location = PeerpoolErrors.SourceLocation(fileID: file, line: line)
    }
}

extension ErrorCode where Domain == SampleError {
    static let first = Self("first_code")
    static let second = Self("second_code")
}

@Suite struct ErrorCodeTests {
    @Test func equalityComparesOnlyTheCode() {
        #expect(SampleError(.first, "one wording") == SampleError(.first, "another wording"))
        #expect(SampleError(.first, "same") != SampleError(.second, "same"))
    }

    @Test func descriptionIsCodeThenMessage() {
        #expect("\(SampleError(.first, "the peer went away"))" == "first_code: the peer went away")
    }

    @Test func locationIsTheThrowingLine() {
        let line = #line + 1
        let error = SampleError(.first, "x")
        #expect(error.location.fileID == "PeerpoolErrorsTests/ErrorCodeTests.swift")
        #expect(error.location.line == line)
    }

    @Test func codedErrorGivesTheCodeWithoutKnowingTheType() {
        let error: any Error = SampleError(.second, "x")
        #expect((error as? any CodedError)?.codeName == "second_code")
    }

    @Test(arguments: [
        ("connect_failed", true), ("a", true), ("bad_id52", true),
        ("wrongLength", false), ("_leading", false), ("trailing_", false), ("has-dash", false),
        ("", false), ("9starts_with_digit", false),
    ])
    func snakeCase(name: String, expected: Bool) {
        #expect(ErrorCode<SampleError>(name).isSnakeCase == expected)
    }

    /// Every code defined in Sources is snake_case: scans the `Self("…")` literals of the
    /// `extension ErrorCode where Domain == …` blocks, so a camelCase code cannot come back.
    @Test func everyCodeInSourcesIsSnakeCase() throws {
        let sources = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        var codes: [String] = []
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            guard text.contains("extension ErrorCode where Domain ==") else { continue }
            for line in text.split(separator: "\n") where line.contains("public static let") {
                guard let open = line.range(of: "Self(\""),
                    let close = line[open.upperBound...].firstIndex(of: "\"")
                else { continue }
                codes.append(String(line[open.upperBound..<close]))
            }
        }
        #expect(codes.count > 80, "found only \(codes.count) codes: did the scan break?")
        let bad = codes.filter { !ErrorCode<SampleError>($0).isSnakeCase }
        #expect(bad.isEmpty, "codes not in snake_case: \(bad)")
    }
}
