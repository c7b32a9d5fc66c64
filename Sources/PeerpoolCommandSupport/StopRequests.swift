import Foundation
import PeerpoolQUIC

/// Why a long-running command (listen, bench peer) should exit cleanly: a signal, or the end of
/// standard input (the parent that started us is gone or let go of us).
public enum StopRequests {
    /// SIGTERM and SIGINT ask for a clean exit instead of killing the process outright.
    public static func watchSignals(_ stop: AsyncStream<String>.Continuation) -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.yield("signal \(number)") }
            source.resume()
            return source
        }
    }

    /// EOF (or an error) on standard input asks for exit. Reads on a thread of its own, since
    /// read(2) blocks; what it reads is thrown away.
    public static func watchStandardInput(_ stop: AsyncStream<String>.Continuation) {
        Thread {
            var buffer = [UInt8](repeating: 0, count: 512)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count > 0 || (count < 0 && errno == EINTR) { continue }
                break
            }
            stop.yield("end of standard input")
        }.start()
    }

    /// Closes the endpoint (CONNECTION_CLOSE to every peer). If that hangs, a watchdog ends the
    /// process after `seconds` anyway: a child must never outlive its parent for long.
    public static func closeWithWatchdog(_ endpoint: QUICEndpoint, seconds: Double) async {
        Thread {
            Thread.sleep(forTimeInterval: seconds)
            _exit(0)
        }.start()
        await endpoint.close(code: 0)
    }
}
