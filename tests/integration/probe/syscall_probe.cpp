// sbox-syscall-probe CLASS...: makes one harmless call of each class of system call that sbox's seccomp
// filter denies, and prints one line per class: "CLASS ok", "CLASS errno=NAME" or "CLASS killed=SIGNAL". The
// tests run it on the host (where each call reaches the kernel), in a sandbox with the filter and in one
// without, so a difference is the filter's doing and not the machine's. Calls that could kill the probe run
// in a child. Linked statically and with libc only, so it runs in any sandbox it is copied into.
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>

namespace {

const char* errno_name(int err) {
    switch (err) {
    case EPERM:
        return "EPERM";
    case ENOSYS:
        return "ENOSYS";
    case EACCES:
        return "EACCES";
    case EINVAL:
        return "EINVAL";
    case ENOENT:
        return "ENOENT";
    case EBADF:
        return "EBADF";
    case ENOTTY:
        return "ENOTTY";
    case EIO:
        return "EIO";
    case EFAULT:
        return "EFAULT";
    default:
        return strerror(err);
    }
}

// Runs `call` in a child; the child exits 0 when it returns >= 0, else 100 + errno. Reports what happened.
std::string in_child(const std::function<long()>& call) {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid == -1) return std::string("fork-failed=") + errno_name(errno);
    if (pid == 0) {
        long r = call();
        _exit(r >= 0 ? 0 : 100 + errno);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) return std::string("killed=") + sigabbrev_np(WTERMSIG(status));
    int code = WEXITSTATUS(status);
    if (code == 0) return "ok";
    return std::string("errno=") + errno_name(code - 100);
}

// A pty pair whose slave is the controlling terminal of the calling (child) process.
int controlling_pty() {
    if (setsid() == -1) return -1;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master == -1 || grantpt(master) == -1 || unlockpt(master) == -1) return -1;
    int slave = open(ptsname(master), O_RDWR); // a session leader without a terminal: it becomes ours
    if (slave == -1) return -1;
    ioctl(slave, TIOCSCTTY, 0);
    return slave;
}

long x86_int80_getpid() {
#if defined(__x86_64__)
    long ret;
    asm volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory"); // i386 getpid
    if (ret < 0) {
        errno = static_cast<int>(-ret);
        return -1;
    }
    return ret;
#else
    errno = ENOSYS;
    return -1;
#endif
}

const std::map<std::string, std::function<long()>>& probes() {
    static const std::map<std::string, std::function<long()>> table = {
        {"keyring", [] { return syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -3 /*session*/, 1); }},
        {"bpf",
         [] {
             union bpf_attr attr;
             memset(&attr, 0, sizeof attr);
             attr.map_type = BPF_MAP_TYPE_ARRAY;
             attr.key_size = 4;
             attr.value_size = 4;
             attr.max_entries = 1;
             return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
         }},
        {"perf",
         [] {
             struct perf_event_attr attr;
             memset(&attr, 0, sizeof attr);
             attr.size = sizeof attr;
             attr.type = PERF_TYPE_SOFTWARE;
             attr.config = PERF_COUNT_SW_TASK_CLOCK;
             attr.exclude_kernel = 1;
             return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
         }},
        // Invalid flags: the kernel checks privilege, then says EINVAL; nothing is loaded or unloaded.
        {"kexec", [] { return syscall(SYS_kexec_load, 0, 0, nullptr, 0xdead0000UL); }},
        {"modules", [] { return syscall(SYS_delete_module, "sbox_no_such_module", O_NONBLOCK); }},
        {"userfaultfd", [] { return syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY); }},
        {"io_uring",
         [] {
             struct io_uring_params params;
             memset(&params, 0, sizeof params);
             return syscall(SYS_io_uring_setup, 1, &params);
         }},
        {"mount", [] { return syscall(SYS_fsopen, "tmpfs", 0); }},
        {"unshare_user", [] { return static_cast<long>(unshare(CLONE_NEWUSER)); }},
        {"unshare_net", [] { return static_cast<long>(unshare(CLONE_NEWUSER | CLONE_NEWNET)); }},
        {"setns", [] { return static_cast<long>(setns(-1, 0)); }},
        // A zero size: EINVAL from the kernel, ENOSYS from the filter.
        {"clone3", [] { return syscall(SYS_clone3, nullptr, 0); }},
        {"tiocsti",
         [] {
             int tty = controlling_pty();
             if (tty == -1) return -1L;
             char c = 'x';
             return static_cast<long>(ioctl(tty, TIOCSTI, &c));
         }},
        // The same request with bits above 32 set: the kernel ignores them.
        {"tiocsti_high",
         [] {
             int tty = controlling_pty();
             if (tty == -1) return -1L;
             char c = 'x';
             return syscall(SYS_ioctl, tty, static_cast<unsigned long>(TIOCSTI) | (1UL << 32), &c);
         }},
        {"tioclinux",
         [] {
             int tty = controlling_pty();
             if (tty == -1) return -1L;
             char subcode = 12; // TIOCL_GETSHIFTSTATE
             return static_cast<long>(ioctl(tty, TIOCLINUX, &subcode));
         }},
        {"tioclinux_high",
         [] {
             int tty = controlling_pty();
             if (tty == -1) return -1L;
             char subcode = 12;
             return syscall(SYS_ioctl, tty, static_cast<unsigned long>(TIOCLINUX) | (1UL << 32), &subcode);
         }},
        {"personality", [] { return syscall(SYS_personality, PER_LINUX32); }},
        {"personality_high", [] { return syscall(SYS_personality, (1UL << 32) | PER_LINUX32); }},
        {"personality_query", [] { return syscall(SYS_personality, 0xffffffffUL); }},
        {"abi32", [] { return x86_int80_getpid(); }},
        {"x32", [] { return syscall(39 | 0x40000000L); }}, // x32 getpid
        // mseal (Linux 6.10) is newer than the libseccomp that compiled the filter (Debian 12's knows up to
        // futex_requeue, 456): EINVAL (bad flags) from the kernel, ENOSYS from the filter.
        {"newer_than_libseccomp", [] { return syscall(462, 0, 0, 1); }},
        // Controls: ordinary calls the filter must let through.
        {"control_getpid", [] { return static_cast<long>(getpid()); }},
        {"control_fork",
         [] {
             pid_t p = fork();
             if (p == 0) _exit(0);
             if (p < 0) return -1L;
             waitpid(p, nullptr, 0);
             return 0L;
         }},
        {"control_tcgets",
         [] {
             int tty = controlling_pty();
             if (tty == -1) return -1L;
             struct termios t;
             return static_cast<long>(tcgetattr(tty, &t));
         }},
        {"control_unshare_files", [] { return static_cast<long>(unshare(CLONE_FILES)); }},
    };
    return table;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CLASS... | all\nclasses:", argv[0]);
        for (const auto& [name, fn] : probes())
            std::fprintf(stderr, " %s", name.c_str());
        std::fprintf(stderr, "\n");
        return 2;
    }
    for (int i = 1; i < argc; ++i) {
        std::string want = argv[i];
        for (const auto& [name, fn] : probes()) {
            if (want != "all" && want != name) continue;
            std::printf("%s %s\n", name.c_str(), in_child(fn).c_str());
        }
    }
    return 0;
}
