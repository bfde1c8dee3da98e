#!/usr/bin/python3
# The fake E2B envd's pseudo-terminal helper: python3 pty_helper.py COLS ROWS -- ARGV...
# Runs ARGV as the session leader of a fresh pseudo-terminal of COLS x ROWS, copies this helper's stdin to the
# terminal and the terminal's output to this helper's stdout. Control lines on fd 3 ("resize COLS ROWS\n") change
# the window size (the kernel then sends SIGWINCH to the terminal's foreground process group). Fd 4 is left open
# for the child only (bwrap's --info-fd). The helper exits with the child's status (128+N for signal N) once the
# child has exited and its output is drained.
import fcntl
import os
import select
import struct
import sys
import termios

cols, rows = int(sys.argv[1]), int(sys.argv[2])
argv = sys.argv[4:]

master, slave = os.openpty()
fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(3)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, f"pty_helper: {argv[0]}: {e.strerror}\r\n".encode())
        os._exit(127)
os.close(slave)
try:
    os.close(4)
except OSError:
    pass

stdin_open = True
ctl_open = True
ctl_buf = b""
status = None
while True:
    fds = [master]
    if stdin_open:
        fds.append(0)
    if ctl_open:
        fds.append(3)
    try:
        ready, _, _ = select.select(fds, [], [], 0.05 if status is not None else 1.0)
    except InterruptedError:
        continue
    if status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    if master in ready:
        try:
            data = os.read(master, 16384)
        except OSError:
            data = b""
        if not data:
            break
        os.write(1, data)
    elif status is not None:
        # The child is gone and nothing more arrived within the poll: its terminal is drained.
        break
    if 0 in ready:
        data = os.read(0, 16384)
        if data:
            os.write(master, data)
        else:
            stdin_open = False
    if 3 in ready:
        data = os.read(3, 4096)
        if not data:
            ctl_open = False
        ctl_buf += data
        while b"\n" in ctl_buf:
            line, ctl_buf = ctl_buf.split(b"\n", 1)
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"resize":
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", int(parts[2]), int(parts[1]), 0, 0))
if status is None:
    _, status = os.waitpid(pid, 0)
if os.WIFSIGNALED(status):
    sys.exit(128 + os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
