import PeerpoolErrors
import CLinuxProcess

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The worker's side of crash isolation: the kernel kills the worker when its supervisor goes.
///
/// `arm` asks for SIGKILL on parent death (`prctl(PR_SET_PDEATHSIG)`). The signal fires when the
/// *thread* that spawned us exits, not only when the parent process does: a worker spawned from
/// a short-lived thread would be killed as soon as that thread ended. That is why the supervisor
/// spawns every worker from its long-lived ZeroMQ poll thread, which lives as long as the
/// supervisor does. Stdin EOF (the supervisor holds the write end of our standard input) is the
/// second, portable signal that the supervisor is gone; this one also covers a supervisor killed
/// by SIGKILL while the worker is not reading its standard input.
public enum ParentDeath {
    /// Arms SIGKILL on parent death, then checks that the parent is still `expectedParent` (the
    /// supervisor passes its pid to the worker). The parent may have died before `prctl` took
    /// effect; we would then have been re-parented, never get the signal, and must not run on.
    ///
    /// Call it once, early in the worker's `main`, from the main thread: the kernel keeps the
    /// setting per thread of the worker too, and drops it with the thread that made it.
    public static func arm(expectedParent: pid_t) throws {
        if pp_set_parent_death_signal(SIGKILL) != 0 {
            throw ParentDeathError(
                code: .cannotArm, expectedParent: expectedParent, actualParent: getppid(), errno: errno)
        }
        try check(expectedParent: expectedParent, actualParent: getppid())
    }

    /// The check after arming, apart so tests can run it: arming in a test runner would kill
    /// the runner when the thread that started it exits.
    static func check(expectedParent: pid_t, actualParent: pid_t) throws {
        guard actualParent == expectedParent else {
            throw ParentDeathError(
                code: .parentGone, expectedParent: expectedParent, actualParent: actualParent, errno: 0)
        }
    }
}

/// `ParentDeath.arm` failed: the worker must exit rather than run without a supervisor.
public struct ParentDeathError: PeerpoolError {
    /// What went wrong. Open-ended: new codes may be added.
    public typealias Code = ErrorCode<ParentDeathError>

    public let code: Code
    /// The supervisor's pid, as passed to `arm`.
    public let expectedParent: pid_t
    /// `getppid()` when the check ran: 1 or a subreaper's pid once the supervisor is gone.
    public let actualParent: pid_t
    /// The `prctl` error for `.cannotArm`; 0 otherwise.
    public let errno: Int32
    public let location: SourceLocation

    public init(code: Code, expectedParent: pid_t, actualParent: pid_t, errno: Int32, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.expectedParent = expectedParent
        self.actualParent = actualParent
        self.errno = errno
        self.location = SourceLocation(fileID: file, line: line)
    }

    public var message: String {
        switch code {
        case .cannotArm:
            let reason = String(cString: strerror(errno))
            return "cannot arm parent-death signal (prctl PR_SET_PDEATHSIG): \(reason); worker exits"
        default:
            return "supervisor (pid \(expectedParent)) is gone: parent is now pid \(actualParent); "
                + "worker exits"
        }
    }
}

extension ErrorCode where Domain == ParentDeathError {
    /// The parent is no longer the expected supervisor: it died before we armed the signal.
    public static let parentGone = Self("parent_gone")
    /// `prctl(PR_SET_PDEATHSIG)` failed (see `errno`).
    public static let cannotArm = Self("cannot_arm")
}
