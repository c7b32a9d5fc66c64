import Foundation

/// What `peerpool-bench iroh` measured, and the table it prints: each of our figures beside
/// iroh's, with the ratio.
struct BenchIrohFigures {
    struct Transfer {
        let sent: BenchIrohPython.Sent
        /// CPU seconds the receiving process used meanwhile.
        let sinkCPU: Double
        var sinkCPUPerGiB: Double { sinkCPU / (Double(sent.bytes) / Double(1 << 30)) }
    }

    struct Idle {
        let connections: Int
        let clientKiB: Int
        let serverKiB: Int
        var clientPerConnection: Double { Double(clientKiB) / Double(max(1, connections)) }
        var serverPerConnection: Double { Double(serverKiB) / Double(max(1, connections)) }
    }

    var irohToIroh: [Transfer] = []
    var oursToIroh: [Transfer] = []
    var irohToOurs: [Transfer] = []
    var irohIdle = Idle(connections: 0, clientKiB: 0, serverKiB: 0)
    var oursIdle = Idle(connections: 0, clientKiB: 0, serverKiB: 0)

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    func print(mib: Int) {
        func row(_ name: String, _ ours: Double, _ theirs: Double, _ unit: String, ratio: Double) {
            Swift.print(BenchText.pad(name, 52) + String(format: " %10.2f %10.2f  ", ours, theirs) + unit + String(format: "  ratio %.2f", ratio))
        }
        Swift.print("")
        Swift.print(BenchText.pad("figure (medians)", 52) + " " + BenchText.pad("peerpool", 10) + " " + BenchText.pad("iroh", 10))
        let intoIrohOurs = median(oursToIroh.map(\.sent.megabytesPerSecond))
        let intoIrohTheirs = median(irohToIroh.map(\.sent.megabytesPerSecond))
        row("into the iroh sink: sender peerpool vs iroh", intoIrohOurs, intoIrohTheirs, "MB/s  ", ratio: intoIrohOurs / max(intoIrohTheirs, 1e-9))
        let fromIrohOurs = median(irohToOurs.map(\.sent.megabytesPerSecond))
        row("from the iroh sender: sink peerpool vs iroh", fromIrohOurs, intoIrohTheirs, "MB/s  ", ratio: fromIrohOurs / max(intoIrohTheirs, 1e-9))
        let senderCPUOurs = median(oursToIroh.map(\.sent.cpuPerGiB))
        let senderCPUTheirs = median(irohToIroh.map(\.sent.cpuPerGiB))
        row("sender CPU per GiB (lower is better)", senderCPUOurs, senderCPUTheirs, "CPU-s ", ratio: senderCPUOurs / max(senderCPUTheirs, 1e-9))
        let sinkCPUOurs = median(irohToOurs.map(\.sinkCPUPerGiB))
        let sinkCPUTheirs = median(irohToIroh.map(\.sinkCPUPerGiB))
        row("sink CPU per GiB (lower is better)", sinkCPUOurs, sinkCPUTheirs, "CPU-s ", ratio: sinkCPUOurs / max(sinkCPUTheirs, 1e-9))
        let connectOurs = median(oursToIroh.map(\.sent.connect_and_ping_ms))
        let connectTheirs = median(irohToIroh.map(\.sent.connect_and_ping_ms))
        row("connect + first ping to iroh: peerpool vs iroh", connectOurs, connectTheirs, "ms    ", ratio: connectTheirs / max(connectOurs, 1e-9))
        let connectToOurs = median(irohToOurs.map(\.sent.connect_and_ping_ms))
        row("connect + first ping by iroh: to peerpool vs iroh", connectToOurs, connectTheirs, "ms    ", ratio: connectTheirs / max(connectToOurs, 1e-9))
        row("RSS per idle connection, dialling side", oursIdle.clientPerConnection, irohIdle.clientPerConnection, "KiB   ",
            ratio: oursIdle.clientPerConnection / max(irohIdle.clientPerConnection, 1e-9))
        row("RSS per idle connection, iroh server's side", oursIdle.serverPerConnection, irohIdle.serverPerConnection, "KiB   ",
            ratio: oursIdle.serverPerConnection / max(irohIdle.serverPerConnection, 1e-9))
        Swift.print("""

            Ratios: throughput ours/iroh (>= 1 meets the goal); CPU per GiB ours/iroh (<= 1 is cheaper);
            connect iroh/ours (>= 1: at least as fast); RSS ours/iroh (<= 1: no more memory).
            Connections for memory: \(oursIdle.connections) (peerpool), \(irohIdle.connections) (iroh). \(mib) MiB per transfer.
            """)
    }
}
