import ArgumentParser
import Foundation

/// `peerpool-bench transport`: bulk download throughput over one QUIC stream on loopback,
/// ours against ngtcp2's own example client and server (the anchor).
///
/// Ours: a `bench peer` child serves `SOURCE <n>`; this process downloads it on a fresh
/// connection per run. Anchor: gtlsserver serves an n-byte file and gtlsclient downloads it, one
/// client process per run. Both use ngtcp2 with GnuTLS and the same default windows (16 MiB per
/// stream, 24 MiB per connection), so the difference is our code around the library.
struct BenchTransportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Download over one QUIC stream from a bench peer, then with ngtcp2's example pair; compare.",
        discussion: """
            Ratio = our median MB/s over the anchor's. The like-for-like ratio compares our \
            connect + transfer time with the anchor client's whole process wall time (start-up \
            included, which favours us); the adjusted ratio compares transfer only with the \
            anchor's wall time minus that of fetching a 1-byte file. The bar (0.50) applies to \
            the like-for-like ratio. Exits 0 whether or not the bar is met; non-zero only if \
            something could not run. Needs Debian packages ngtcp2-server and ngtcp2-client.
            """
    )

    @Option(help: "MiB to download in each run.")
    var mib = 256

    @Option(name: .customLong("repeat"), help: "Runs of each side; best and median are reported.")
    var repeatCount = 3

    @Flag(help: "Also print the figures as a Markdown table for release notes.")
    var releaseNote = false

    static let bar = 0.5

    func validate() throws {
        guard (1...65_536).contains(mib) else { throw ValidationError("--mib must be between 1 and 65536") }
        guard (1...100).contains(repeatCount) else { throw ValidationError("--repeat must be between 1 and 100") }
    }

    func run() async throws {
        try BenchTransportAnchor.requireTools()
        let bytes = mib * 1_048_576
        // Generous: 30 s plus 10 MB/s, so only a stall, never a slow machine, trips it.
        let runTimeout = Duration.seconds(30) + .milliseconds(100 * mib)
        print("bench transport: \(mib) MiB (\(bytes) bytes) over one stream on 127.0.0.1, \(repeatCount) runs per side")
        let ours = try await BenchTransportOurs(
            executable: BenchTransportOurs.currentExecutable, bytes: bytes, runs: repeatCount, runTimeout: runTimeout
        ).measure { print($0) }
        let anchor = try await BenchTransportAnchor(bytes: bytes, runs: repeatCount, runTimeout: runTimeout)
            .measure { print($0) }
        printTable(ours: ours, anchor: anchor)
        if releaseNote { printReleaseNote(ours: ours, anchor: anchor) }
    }

    private func printTable(ours: BenchFigures, anchor: BenchFigures) {
        let rows: [(String, BenchFigures, [Duration])] = [
            ("ours    connect + transfer", ours, ours.fullRuns),
            ("ours    transfer only", ours, ours.transferRuns),
            ("anchor  client process wall", anchor, anchor.fullRuns),
            ("anchor  wall - 1-byte fetch", anchor, anchor.transferRuns),
        ]
        print("")
        print(pad("", 30) + pad("best MB/s", 11, right: true) + pad("median MB/s", 13, right: true)
            + pad("client RSS MiB", 16, right: true) + pad("server RSS MiB", 16, right: true)
            + pad("CPU s/run cl+sv", 17, right: true))
        for (label, figures, runs) in rows {
            let (best, median) = figures.throughput(runs)
            print(pad(label, 30) + pad(fixed(best, 1), 11, right: true) + pad(fixed(median, 1), 13, right: true)
                + pad(mebibytes(figures.clientPeakRSSKiB), 16, right: true)
                + pad(mebibytes(figures.serverPeakRSSKiB), 16, right: true)
                + pad(cpuPerRun(figures), 17, right: true))
        }
        let (raw, adjusted) = ratios(ours: ours, anchor: anchor)
        print("")
        print("ratio (ours/anchor): \(fixed(raw, 2))   (median MB/s: our connect + transfer vs the anchor client's process wall time)")
        print("adjusted ratio (ours/anchor): \(fixed(adjusted, 2))   (median MB/s: our transfer only vs anchor wall minus its 1-byte fetch)")
        print("bar \(fixed(Self.bar, 2)): \(raw >= Self.bar ? "PASS" : "FAIL")")
    }

    private func printReleaseNote(ours: BenchFigures, anchor: BenchFigures) {
        let (raw, adjusted) = ratios(ours: ours, anchor: anchor)
        let (oursBest, oursMedian) = ours.throughput(ours.fullRuns)
        let (anchorBest, anchorMedian) = anchor.throughput(anchor.fullRuns)
        print("")
        print("| \(mib) MiB, 1 stream, loopback | median MB/s | best MB/s | client RSS MiB | server RSS MiB |")
        print("|---|---:|---:|---:|---:|")
        print("| peerpool (connect + transfer) | \(fixed(oursMedian, 1)) | \(fixed(oursBest, 1)) | "
            + "\(mebibytes(ours.clientPeakRSSKiB)) | \(mebibytes(ours.serverPeakRSSKiB)) |")
        print("| ngtcp2 gtlsclient/gtlsserver (process wall) | \(fixed(anchorMedian, 1)) | \(fixed(anchorBest, 1)) | "
            + "\(mebibytes(anchor.clientPeakRSSKiB)) | \(mebibytes(anchor.serverPeakRSSKiB)) |")
        print("")
        print("Ratio \(fixed(raw, 2)) (adjusted for handshake and start-up: \(fixed(adjusted, 2))); "
            + "bar \(fixed(Self.bar, 2)) \(raw >= Self.bar ? "met" : "missed"). "
            + "\(repeatCount) runs per side, \(ProcessInfo.processInfo.activeProcessorCount) cores.")
    }

    /// Like-for-like and adjusted ratios of median MB/s.
    private func ratios(ours: BenchFigures, anchor: BenchFigures) -> (raw: Double, adjusted: Double) {
        func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }
        return (ratio(ours.throughput(ours.fullRuns).median, anchor.throughput(anchor.fullRuns).median),
                ratio(ours.throughput(ours.transferRuns).median, anchor.throughput(anchor.transferRuns).median))
    }

    private func cpuPerRun(_ figures: BenchFigures) -> String {
        let runs = Double(max(1, figures.fullRuns.count))
        let client = figures.clientCPUSeconds.map { fixed($0 / runs, 2) } ?? "?"
        let server = figures.serverCPUSeconds.map { fixed($0 / runs, 2) } ?? "?"
        return "\(client)+\(server)"
    }

    private func mebibytes(_ kibibytes: Int?) -> String {
        kibibytes.map { fixed(Double($0) / 1024, 1) } ?? "?"
    }

    private func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }
}
