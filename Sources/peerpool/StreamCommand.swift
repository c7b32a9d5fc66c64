import ArgumentParser
import Foundation
import NIOCore
import PeerpoolPool
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `peerpool stream`: netcat over one fastn stream. Standard input goes to the peer (our side
/// finishes at its end), what the peer sends goes to standard output; the command ends when the
/// peer finishes its side.
///
/// One chunk at a time in each direction: the next read of standard input starts only once
/// the stream took the previous chunk (so a slow peer slows the reader down), and the next read
/// from the stream only once standard output took the previous one.
struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Open a stream to a peer and connect it to standard input and output.",
        discussion: """
            The stream starts with the protocol line (and the --extra line, if given); once the \
            peer acknowledges it, standard input is copied to the peer and the peer's bytes to \
            standard output. Exits 0 when the peer ends the stream. Example: \
            echo hello | peerpool stream <id52>@127.0.0.1:4433 --protocol '{"Generic":"echo"}'
            """
    )

    @Argument(help: ArgumentHelp("The peer: its ID52 and where it listens (IPv6 as id52@[::1]:port).", valueName: "id52@host:port"))
    var peer: String

    @Option(
        name: .customLong("protocol"),
        help: ArgumentHelp("The protocol as fastn's JSON, e.g. '\"Http\"' or '{\"Generic\":\"echo\"}'.", valueName: "json"))
    var protocolJSON: String

    @Option(help: ArgumentHelp("A line sent after the protocol line (fastn's `extra`).", valueName: "text"))
    var extra: String?

    @OptionGroup var dial: DialOptions

    /// Largest chunk read from standard input at once.
    static let chunkSize = 64 * 1024

    func run() async throws {
        let header = try makeHeader()
        // A reader of our output that goes away must be an error we report, not a silent death.
        signal(SIGPIPE, SIG_IGN)
        try await dial.withPool(to: peer) { pool, address in
            let stream = try await pool.getStream(header, to: address)
            try await Self.connect(stream)
        }
    }

    /// The header, or an error that names the option at fault.
    private func makeHeader() throws -> ProtocolHeader {
        let parsed: StreamProtocol
        do {
            parsed = try StreamProtocol(json: protocolJSON)
        } catch let error as StreamProtocolError {
            throw StreamProtocolError(
                error.code, "--protocol \(protocolJSON.prefix(200).debugDescription) names no protocol: \(error.message)")
        }
        let header = ProtocolHeader(parsed, extra: extra)
        do {
            _ = try header.encoded()
        } catch let error as StreamProtocolError {
            throw StreamProtocolError(error.code, "--extra: \(error.message)")
        }
        return header
    }

    private enum Direction: Sendable {
        case toPeer
        case fromPeer
    }

    /// Copies both ways until the peer ends its side. Ending standard input only finishes ours.
    private static func connect(_ stream: PeerStream) async throws {
        try await withThrowingTaskGroup(of: Direction.self) { group in
            group.addTask {
                let input = StandardInput()
                while let chunk = try await input.read(upTo: chunkSize) {
                    do {
                        try await stream.write(chunk)
                    } catch {
                        // The peer stopped reading or the connection failed; the other direction
                        // reports the latter. Standard input is of no further use.
                        return .toPeer
                    }
                }
                try? await stream.finish()
                return .toPeer
            }
            group.addTask {
                let output = StandardOutput()
                while let chunk = try await stream.read() { try await output.write(chunk) }
                return .fromPeer
            }
            while let finished = try await group.next() {
                if finished == .fromPeer { break }
            }
            // Standard input may still be open (a terminal, a pipe nobody closes): stop waiting.
            group.cancelAll()
        }
    }
}

extension StreamCommand {
    /// Standard input read with blocking read(2) on a dispatch queue, one read at a time.
    ///
    /// Cancelling the task that waits in `read` returns at once; the read(2) still pending is
    /// left to finish on its own and its bytes are dropped, which is fine only because
    /// cancellation means the command is done.
    final class StandardInput: Sendable {
        private let queue = DispatchQueue(label: "peerpool.stream.stdin")

        /// The next bytes, or nil at the end of input. Throws on a read error or cancellation.
        func read(upTo count: Int) async throws -> ByteBuffer? {
            let waiter = OneShot<ByteBuffer?>()
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    guard waiter.install(continuation) else { return }
                    queue.async {
                        var bytes = [UInt8](repeating: 0, count: count)
                        while true {
                            let got = bytes.withUnsafeMutableBytes { systemRead(STDIN_FILENO, $0.baseAddress, $0.count) }
                            if got < 0, errno == EINTR { continue }
                            if got < 0 {
                                let message = String(cString: strerror(errno))
                                waiter.resume(with: .failure(POSIXStreamError("cannot read standard input: \(message)")))
                            } else {
                                waiter.resume(with: .success(got == 0 ? nil : ByteBuffer(bytes: bytes[0..<got])))
                            }
                            return
                        }
                    }
                }
            } onCancel: {
                waiter.resume(with: .failure(CancellationError()))
            }
        }
    }

    /// Standard output written with blocking write(2) on a dispatch queue, so a slow reader of
    /// our output blocks a dispatch thread, never one of Swift's few cooperative threads.
    final class StandardOutput: Sendable {
        private let queue = DispatchQueue(label: "peerpool.stream.stdout")

        /// Returns once every byte of `buffer` was written.
        func write(_ buffer: ByteBuffer) async throws {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                queue.async {
                    let failure: String? = buffer.withUnsafeReadableBytes { bytes in
                        var offset = 0
                        while offset < bytes.count {
                            let wrote = systemWrite(STDOUT_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                            if wrote < 0, errno == EINTR { continue }
                            if wrote < 0 { return String(cString: strerror(errno)) }
                            offset += wrote
                        }
                        return nil
                    }
                    if let failure {
                        continuation.resume(throwing: POSIXStreamError("cannot write standard output: \(failure)"))
                    } else {
                        continuation.resume()
                    }
                }
            }
        }
    }

    /// A failed read(2) or write(2) on standard input or output.
    struct POSIXStreamError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A continuation resumed exactly once, by whichever comes first: the result or a
    /// cancellation (which may even come before the continuation is installed).
    final class OneShot<Value: Sendable>: Sendable {
        private enum State {
            case waiting
            case installed(CheckedContinuation<Value, any Error>)
            case cancelled
            case done
        }

        private let state = Mutex(State.waiting)

        /// Returns false (having resumed it with `CancellationError`) when cancelled already.
        func install(_ continuation: CheckedContinuation<Value, any Error>) -> Bool {
            let cancelled = state.withLock { state -> Bool in
                guard case .waiting = state else { return true }
                state = .installed(continuation)
                return false
            }
            if cancelled { continuation.resume(throwing: CancellationError()) }
            return !cancelled
        }

        func resume(with result: Result<Value, any Error>) {
            let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
                switch state {
                case .installed(let continuation):
                    state = .done
                    return continuation
                case .waiting:
                    state = .cancelled
                    return nil
                case .cancelled, .done:
                    return nil
                }
            }
            continuation?.resume(with: result)
        }
    }
}

/// read(2) and write(2) under names the methods above do not shadow.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
