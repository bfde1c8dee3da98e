#!/usr/bin/python3
# python3 leave_chroot.py ARGV...: runs ARGV in a private mount namespace whose root is this chroot's directory
# made a real mount root, so that bubblewrap (which must remount "/") works for root inside a chroot.
# As sbox's own leave_chroot() (src/local/namespaces.cpp), except that the chroot's directory is first bound onto
# itself: "/" of a chroot that is not a mount point cannot be remounted, nor pivoted into.
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH, SYS_pivot_root = 0x20000, 0x1000, 0x4000, 1 << 18, 2, 155


def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        sys.exit(f"leave_chroot: {what}: {os.strerror(e)}")


check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
chroot_root = os.open("/", os.O_PATH | os.O_DIRECTORY)
# Climb out of the chroot to this mount namespace's real root...
os.chdir("/")
os.chroot("/proc")
for _ in range(64):
    os.chdir("..")
os.chroot(".")
os.chdir("/")
check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
# ...make the chroot's directory a mount of its own, and that mount the namespace's root.
where = os.readlink(f"/proc/self/fd/{chroot_root}").encode()
check(libc.mount(where, where, None, MS_BIND | MS_REC, None), "bind the chroot onto itself")
os.chdir(where)
check(libc.syscall(SYS_pivot_root, b".", b"."), "pivot_root into the chroot's root")
check(libc.umount2(b".", MNT_DETACH), "detach the host's root")
os.chdir("/")
os.execvp(sys.argv[1], sys.argv[1:])
