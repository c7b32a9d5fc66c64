/// The final table of `bench supervisor`: each figure with its goal (and bar, where there is
/// one) and whether it met them.
struct BenchSupervisorReport {
    struct Row {
        let figure: String
        let value: String
        let target: String
        let verdict: String
    }

    private(set) var rows: [Row] = []

    /// A figure that should be at least `bar` and ideally at least `goal`.
    mutating func atLeast(_ figure: String, _ value: Double, digits: Int = 2, bar: Double?, goal: Double) {
        let text = BenchText.fixed(value, digits)
        var target = "goal >= \(BenchText.fixed(goal, digits))"
        if let bar { target = "bar >= \(BenchText.fixed(bar, digits)), " + target }
        let verdict: String
        if value >= goal {
            verdict = "PASS"
        } else if let bar, value >= bar {
            verdict = "PASS bar, MISS goal"
        } else {
            verdict = "MISS"
        }
        rows.append(Row(figure: figure, value: text, target: target, verdict: verdict))
    }

    /// A figure that should be at most `goal`; `unit` follows the numbers.
    mutating func atMost(_ figure: String, _ value: Double, digits: Int = 2, unit: String = "", goal: Double) {
        rows.append(Row(
            figure: figure, value: BenchText.fixed(value, digits) + unit,
            target: "goal <= \(BenchText.fixed(goal, digits))\(unit)", verdict: value <= goal ? "PASS" : "MISS"))
    }

    /// A figure printed for context, with no goal.
    mutating func info(_ figure: String, _ value: String) {
        rows.append(Row(figure: figure, value: value, target: "", verdict: ""))
    }

    /// A part that could not produce its figure.
    mutating func failed(_ figure: String, _ reason: String) {
        rows.append(Row(figure: figure, value: "n/a", target: reason, verdict: "MISS"))
    }

    var lines: [String] {
        let widths = (
            rows.map(\.figure.count).max() ?? 0, rows.map(\.value.count).max() ?? 0, rows.map(\.target.count).max() ?? 0
        )
        return rows.map { row in
            BenchText.pad(row.figure, widths.0 + 2) + BenchText.pad(row.value, widths.1, right: true) + "   "
                + BenchText.pad(row.target, widths.2 + 2) + row.verdict
        }
    }
}
