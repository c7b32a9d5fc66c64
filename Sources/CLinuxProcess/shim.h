// Linux process calls Swift cannot import: `syscall` and `prctl` are variadic, and Swift's Glibc
// module is built without _GNU_SOURCE, which hides pipe2 and posix_spawn's closefrom action.
// Defining _GNU_SOURCE here instead would change glibc's struct definitions (fd_set) under this
// module and clash with the other modules' in a clean build, so the two GNU functions are
// declared below, exactly as glibc 2.36 declares them.
#ifndef PEERPOOL_CLINUXPROCESS_SHIM_H
#define PEERPOOL_CLINUXPROCESS_SHIM_H

#include <fcntl.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

/// A file descriptor that becomes readable when process `pid` exits (Linux 5.3+), or -1 with
/// errno set. The caller owns it and closes it.
static inline int pp_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/// Ask the kernel to send `signal` to this process when the thread that created it exits.
static inline int pp_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0);
}

extern int pipe2(int __pipedes[2], int __flags);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *, int __from);

/// pipe2(2) with O_CLOEXEC: both ends close on exec, atomically, so a child spawned by another
/// thread in between cannot inherit them.
static inline int pp_pipe_cloexec(int fds[_Nonnull 2]) {
    return pipe2(fds, O_CLOEXEC);
}

/// Adds "close every descriptor from `lowest` up" to a posix_spawn file-action list (glibc
/// 2.34+, a GNU extension): the child inherits only what the actions set up, whatever the parent
/// forgot to mark close-on-exec (an embedding application's pipes, Foundation's Process pipes).
static inline int pp_spawn_close_from(posix_spawn_file_actions_t *_Nonnull actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

/// Returns free heap memory to the system (glibc keeps freed memory in its arenas otherwise, so
/// a process's resident size stays at its peak after a burst). Slow (it walks every arena):
/// call it after bursts, not per message.
static inline int pp_malloc_trim(void) {
    return malloc_trim(0);
}

#endif
