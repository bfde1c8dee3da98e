// sbox-seccomp-gen: compiles the sandbox's system call filter with libseccomp at build time and prints it as
// C++ source (the BPF program and a description of what it denies) for src/local/seccomp.cpp.
//
// Why at build time: building this filter at run time costs libseccomp about a millisecond per process (over
// a thousand rules), and loading libseccomp itself costs more; `sbox run -- true` must stay faster than
// bubblewrap. The BPF that libseccomp emits for this machine's architecture is what every sandboxed process
// gets; the kernel only loads it (prctl PR_SET_SECCOMP).
//
// The profile (design.md, "Hardening"):
//  - everything not listed is allowed (a deny-list, as docker's and flatpak's);
//  - denied with EPERM: keyrings, bpf, perf_event_open, kexec, module loading, userfaultfd, io_uring, the
//  mount
//    API and mount/umount/pivot_root, setns and namespace creation (clone/unshare with CLONE_NEW* flags: no
//    nested user namespaces), ioctl TIOCSTI and TIOCLINUX (compared on the low 32 bits, as the kernel reads
//    the command, so a command with high bits set is denied too), personality changes (only the query
//    0xffffffff and PER_LINUX pass), and a few calls that only privileged processes may make anyway
//    (defence in depth: reboot, swapon, acct, syslog, open_by_handle_at, iopl, ...);
//  - clone3 returns ENOSYS: its flags live in memory the filter cannot read, and libc falls back to clone;
//  - every system call number libseccomp does not know (newer than it, or never assigned) returns ENOSYS;
//  - another architecture's calls (32-bit int 0x80, x32) kill the process.
#include <seccomp.h>

#include <linux/sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Classes of denied calls, as `inspect` names them.
struct DeniedClass {
    const char* name;
    std::vector<const char*> syscalls;
};

const std::vector<DeniedClass>& denied_classes() {
    static const std::vector<DeniedClass> classes = {
        {"keyring", {"add_key", "request_key", "keyctl"}},
        {"bpf", {"bpf"}},
        {"perf", {"perf_event_open"}},
        {"kexec", {"kexec_load", "kexec_file_load"}},
        {"modules", {"init_module", "finit_module", "delete_module", "create_module"}},
        {"userfaultfd", {"userfaultfd"}},
        {"io_uring", {"io_uring_setup", "io_uring_enter", "io_uring_register"}},
        {"mount",
         {"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree",
          "move_mount", "mount_setattr"}},
        {"namespaces", {"setns"}}, // and clone/unshare with CLONE_NEW* flags, clone3 (ENOSYS): see below
        {"privileged",
         {"reboot", "swapon", "swapoff", "acct", "syslog", "open_by_handle_at", "iopl", "ioperm", "quotactl",
          "quotactl_fd", "settimeofday", "clock_settime", "clock_adjtime", "lookup_dcookie", "nfsservctl",
          "uselib", "vhangup"}},
    };
    return classes;
}

void check(int rc, const std::string& what) {
    if (rc < 0) {
        std::fprintf(stderr, "sbox-seccomp-gen: %s: %s\n", what.c_str(), std::strerror(-rc));
        std::exit(1);
    }
}

// The syscall's number for this architecture, or -1 when it has none here (create_module on x86_64).
int number_of(const char* name) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}

constexpr std::uint64_t kNamespaceFlags[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                             CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, CLONE_NEWTIME};

} // namespace

int main() {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        std::fprintf(stderr, "sbox-seccomp-gen: seccomp_init failed\n");
        return 1;
    }
    check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");
    // A binary search over syscall numbers rather than a linear chain: every allowed call stays cheap.
    check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize");

    const auto eperm = SCMP_ACT_ERRNO(EPERM);
    const auto enosys = SCMP_ACT_ERRNO(ENOSYS);
    std::vector<std::string> denied_names;
    for (const auto& c : denied_classes())
        for (const char* name : c.syscalls) {
            int nr = number_of(name);
            if (nr < 0) continue;
            check(seccomp_rule_add(ctx, eperm, nr, 0), name);
            denied_names.emplace_back(name);
        }

    // Namespace creation: clone and unshare with any CLONE_NEW* flag. (The kernel reads clone's flags as 32
    // bits and unshare's as 64; the namespace bits are in the low 32 either way.)
    for (std::uint64_t flag : kNamespaceFlags) {
        if (flag != CLONE_NEWTIME) // for clone, that bit is part of the exit signal
            check(seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
                  "clone");
        check(seccomp_rule_add(ctx, eperm, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
              "unshare");
    }
    check(seccomp_rule_add(ctx, enosys, SCMP_SYS(clone3), 0), "clone3");

    // Terminal injection: the kernel takes ioctl's command as 32 bits, so compare only those.
    for (unsigned long request : {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)})
        check(seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, request)),
              "ioctl");

    // personality: allowed are only 0 (PER_LINUX) and the query 0xffffffff. A rule may compare an argument
    // once, so the rest is covered by a union: anything above 32 bits, and every value whose low 32 bits have
    // a set bit followed (cyclically) by a clear one, which is every value but all-zero and all-one.
    check(seccomp_rule_add(ctx, eperm, SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_GT, 0xffffffffULL)),
          "personality");
    for (int bit = 0; bit < 32; ++bit) {
        std::uint64_t set = 1ULL << bit, clear = 1ULL << ((bit + 1) % 32);
        check(seccomp_rule_add(ctx, eperm, SCMP_SYS(personality), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, set | clear, set)),
              "personality");
    }

    // Every number libseccomp does not know: ENOSYS, so a call newer than this filter fails as on an older
    // kernel instead of passing unchecked. 1024 is far above the highest number in use.
    int unknown = 0;
    for (int nr = 0; nr < 1024; ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (name) {
            std::free(name);
            continue;
        }
        check(seccomp_rule_add(ctx, enosys, nr, 0), "unknown syscall " + std::to_string(nr));
        ++unknown;
    }

    char path[] = "/tmp/sbox-seccomp-XXXXXX";
    int fd = ::mkstemp(path);
    if (fd == -1) {
        std::perror("sbox-seccomp-gen: mkstemp");
        return 1;
    }
    ::unlink(path);
    check(seccomp_export_bpf(ctx, fd), "export the BPF program");
    off_t size = ::lseek(fd, 0, SEEK_END);
    std::vector<unsigned char> bpf(static_cast<size_t>(size));
    if (::pread(fd, bpf.data(), bpf.size(), 0) != static_cast<ssize_t>(bpf.size())) {
        std::perror("sbox-seccomp-gen: read back");
        return 1;
    }
    ::close(fd);
    seccomp_release(ctx);

    const scmp_version* v = seccomp_version();
    std::printf(
        "// Generated at build time by sbox-seccomp-gen (src/local/seccomp/generate.cpp) with libseccomp "
        "%u.%u.%u. Do not edit.\n",
        v->major, v->minor, v->micro);
    std::printf("constexpr const char kLibseccompVersion[] = \"%u.%u.%u\";\n", v->major, v->minor, v->micro);
    std::printf("constexpr int kUnknownSyscalls = %d;\n", unknown);
    std::printf("constexpr unsigned char kFilterBytes[] = {");
    for (size_t i = 0; i < bpf.size(); ++i)
        std::printf("%s0x%02x,", i % 16 == 0 ? "\n    " : "", bpf[i]);
    std::printf("\n};\n");
    std::printf("constexpr const char* kDeniedClasses[][2] = {\n");
    for (const auto& c : denied_classes()) {
        std::string list;
        for (const char* name : c.syscalls)
            if (number_of(name) >= 0) list += (list.empty() ? "" : " ") + std::string(name);
        if (std::string(c.name) == "namespaces")
            list += " clone unshare (with CLONE_NEW* flags) clone3 (ENOSYS)";
        std::printf("    {\"%s\", \"%s\"},\n", c.name, list.c_str());
    }
    std::printf("    {\"terminal\", \"ioctl TIOCSTI TIOCLINUX\"},\n");
    std::printf("    {\"personality\", \"personality (all but PER_LINUX and the query)\"},\n");
    std::printf("};\n");
    return 0;
}
