import ArgumentParser
import Foundation
import PeerpoolIdentity

/// `peerpool id`: makes and reads the key files a peer's identity lives in.
///
/// Errors are thrown, not printed: ArgumentParser prints an `IdentityError` as "Error: <message>"
/// (through its `LocalizedError` conformance) and exits non-zero.
struct IDCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "id",
        abstract: "Create and inspect ID52 identities",
        subcommands: [Generate.self, Show.self]
    )
}

extension IDCommand {
    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a secret key, save it to a key file and print its ID52",
            discussion: """
                Prints only the ID52 on standard output, so scripts can capture it; says where \
                the key was saved on standard error. The key file is created with mode 0600.
                """
        )

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Where to save the secret key (default: ./<ID52>.private-key).",
                valueName: "path"
            )
        )
        var file: String?

        @Flag(name: .long, help: "Overwrite the key file if it already exists, destroying the key it holds.")
        var force = false

        func run() async throws {
            let key = SecretKey.generate()
            let path = file ?? "\(key.id52).private-key"
            do {
                try key.save(toFile: path, overwrite: force)
            } catch let error as IdentityError where error.code == .keyFileExists {
                throw IdentityError(
                    code: error.code,
                    message: "\(error.message) Pass --force to overwrite it.",
                    underlying: error
                )
            }
            print(key.id52)
            let absolutePath = URL(fileURLWithPath: path).standardizedFileURL.path
            FileHandle.standardError.write(Data("Secret key for \(key.id52) saved to \(absolutePath)\n".utf8))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the ID52 of the secret key in a key file",
            discussion: "Refuses key files that group or others can access; fix those with `chmod 600`."
        )

        @Argument(help: ArgumentHelp("The key file to read.", valueName: "path"))
        var path: String

        func run() async throws {
            let key = try SecretKey.load(fromFile: path)
            print(key.id52)
        }
    }
}
