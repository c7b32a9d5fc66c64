import Foundation
import PeerpoolTestSupport
import Testing

/// `TestChild` against small shell scripts: lines are waited for without loss, waits end at
/// their deadlines, output stays bounded, and no child outlives its owner.
@Suite(.timeLimit(.minutes(1)))
struct TestChildTests {
    static func shell(_ script: String) -> TestChild.Command {
        TestChild.Command("test shell", executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script])
    }

    @Test func nextLine_takesMatchingLines_keepingOrDroppingTheEarlierOnes() async throws {
        try await withTestChild(Self.shell("printf 'a\\nb\\nc\\nd\\ne\\n'; exec cat")) { child throws in
            #expect(try await child.nextLine(matching: { $0 == "c" }, within: .seconds(20)) == "c")
            #expect(try await child.nextLine(within: .seconds(20)) == "a")
            #expect(try await child.nextLine(matching: { $0 == "d" }, within: .seconds(20), earlier: .dropped) == "d")
            #expect(try await child.nextLines(1, within: .seconds(20)) == ["e"])
            #expect(child.takeUnread().isEmpty)
        }
    }

    @Test func nextLine_thatTimesOut_throwsWithTheTranscript_andLosesNoLine() async throws {
        try await withTestChild(Self.shell("echo started; echo 'to stderr' >&2; read line; echo \"got $line\"; exec cat")) { child throws in
            #expect(try await child.nextLine(within: .seconds(20)) == "started")
            let clock = ContinuousClock()
            let start = clock.now
            let error = await #expect(throws: TestChildError.self) {
                try await child.nextLine(within: .milliseconds(300), "GOT")
            }
            #expect(clock.now - start < .seconds(10))
            #expect(error?.code == .timedOut)
            #expect(error?.message.contains("test shell printed no GOT line within") == true, "\(String(describing: error))")
            #expect(error?.message.contains("stdout: started") == true, "\(String(describing: error))")
            try child.writeLine("ping")
            #expect(try await child.nextLine(within: .seconds(20)) == "got ping")
            #expect(child.transcript.contains("stderr: to stderr"), "\(child.transcript)")
        }
    }

    @Test func nextLine_whenTheChildExitsFirst_throwsOutputEnded() async throws {
        try await withTestChild(Self.shell("echo only; exit 3")) { child throws in
            let error = await #expect(throws: TestChildError.self) {
                try await child.nextLine(matching: { $0 == "never" }, within: .seconds(20), "never")
            }
            #expect(error?.code == .outputEnded)
            #expect(await child.exit(within: .seconds(20)) == .exited(3))
        }
    }

    @Test func closeStandardInput_givesTheChildEOF() async throws {
        try await withTestChild(Self.shell("cat; echo eof")) { child throws in
            try child.writeLine("echoed")
            #expect(try await child.nextLine(within: .seconds(20)) == "echoed")
            child.closeStandardInput()
            #expect(try await child.nextLine(within: .seconds(20)) == "eof")
            #expect(await child.exit(within: .seconds(20))?.status == 0)
            #expect(throws: TestChildError(.inputClosed, child: "", "")) { try child.writeLine("late") }
        }
    }

    @Test func kill_andTerminate_endTheChild_andTellHow() async throws {
        try await withTestChild(Self.shell("exec sleep 60")) { child throws in
            #expect(await child.exit(within: .milliseconds(100)) == nil)
            #expect(await child.kill() == .signalled(SIGKILL))
            #expect(child.termination?.status == -SIGKILL)
        }
        try await withTestChild(Self.shell("trap 'exit 7' TERM; echo ready; while :; do sleep 1; done")) { child throws in
            _ = try await child.nextLine(within: .seconds(20))
            let ending = await child.terminate(grace: .seconds(20))
            #expect(ending.termination == .exited(7) && !ending.killed, "\(ending)")
        }
    }

    @Test func releasingAChild_killsAndReapsIt() async throws {
        var child: TestChild? = try TestChild(Self.shell("exec sleep 60"))
        let pid = try #require(child?.pid)
        child = nil
        // Reaped, not a zombie: the pid names no process of ours any more.
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
    }

    @Test func run_collectsBothStreams_andKillsAChildThatOverstays() async throws {
        var command = Self.shell("cat; printf 'no newline' >&2; exit 2")
        command.standardInput = .contents(Data("from a file\n".utf8))
        let finished = try await TestChild.run(command, within: .seconds(20))
        #expect(finished.status == 2 && !finished.timedOut, "\(finished)")
        #expect(finished.stdout == "from a file\n" && finished.lines == ["from a file"], "\(finished)")
        #expect(finished.stderr == "no newline", "\(finished)")

        let clock = ContinuousClock()
        let start = clock.now
        let overstayed = try await TestChild.run(Self.shell("echo begun; exec sleep 60"), within: .milliseconds(500))
        #expect(clock.now - start < .seconds(20))
        #expect(overstayed.timedOut && overstayed.status == nil && overstayed.termination == .signalled(SIGKILL), "\(overstayed)")
        #expect(overstayed.stdout == "begun\n", "\(overstayed)")
    }

    @Test func output_isBounded_overLongLinesDropped_transcriptKeepsTheLast() async throws {
        var command = Self.shell("head -c 5000 /dev/zero | tr '\\0' x; echo; for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; exec cat")
        command.lineLimit = 1000
        command.transcriptLimit = 4
        try await withTestChild(command) { child throws in
            #expect(try await child.nextLine(within: .seconds(20)) == "line 1", "the 5000-byte line is dropped whole")
            _ = try await child.nextLine(matching: { $0 == "line 10" }, within: .seconds(20))
            #expect(child.transcript == "stdout: line 7\nstdout: line 8\nstdout: line 9\nstdout: line 10", "\(child.transcript)")
        }
    }

    @Test func aMissingExecutable_throwsStartFailed() {
        #expect(throws: TestChildError(.startFailed, child: "", "")) {
            try TestChild(.program("/nonexistent/peerpool-test-child", []))
        }
    }
}
