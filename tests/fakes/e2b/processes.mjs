// Real processes for the fake envd: each one runs on this host inside bubblewrap, with the sandbox's scratch
// directory bound at / and the host's system directories read-only, so that processes and the files API see
// the same tree. A PTY process runs under pty_helper.py (python3's pty module).
import { spawn, spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const PYTHON = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

let bwrapArgsCache = null;
function systemBinds() {
  if (bwrapArgsCache) return bwrapArgsCache;
  const args = [];
  for (const d of SYSTEM_DIRS) {
    let st;
    try { st = fs.lstatSync(d); } catch { continue; }
    // A symlinked one (/bin -> usr/bin) is a symlink in every scratch root already (makeScratch).
    if (!st.isSymbolicLink() && st.isDirectory()) args.push("--ro-bind", d, d);
  }
  bwrapArgsCache = args;
  return args;
}

// In a chroot bubblewrap cannot remount "/": each one is then started through leave_chroot.py (probeBwrap).
let bwrapPrefix = [];

export function bwrapArgv(root, cwd, infoFd) {
  return [...bwrapPrefix, "bwrap", "--bind", root, "/", ...systemBinds(), "--proc", "/proc", "--dev", "/dev",
    "--die-with-parent", "--info-fd", String(infoFd), "--chdir", cwd, "--"];
}

// Checks once whether bubblewrap can run here, directly or (as root in a chroot) through leave_chroot.py;
// returns null, or a message saying why not.
export function probeBwrap(scratch) {
  makeSystemLinks(scratch);
  const attempt = (prefix) => {
    const [cmd, ...args] = [...prefix, "bwrap", "--bind", scratch, "/", ...systemBinds(), "--proc", "/proc",
      "--dev", "/dev", "--", "/bin/true"];
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.error) return `${cmd}: ${r.error.message}`;
    if (r.status !== 0) return (r.stderr || `${cmd} exited ${r.status}`).trim();
    return null;
  };
  const direct = attempt([]);
  if (!direct) return null;
  const viaHelper = [PYTHON, path.join(HERE, "leave_chroot.py")];
  if (process.geteuid?.() === 0 && !attempt(viaHelper)) { bwrapPrefix = viaHelper; return null; }
  return direct;
}

// The host's symlinked system directories (merged /usr: /bin -> usr/bin ...), made once in a scratch root.
export function makeSystemLinks(root) {
  fs.mkdirSync(root, { recursive: true });
  for (const d of SYSTEM_DIRS) {
    let st;
    try { st = fs.lstatSync(d); } catch { continue; }
    if (st.isSymbolicLink()) {
      try { fs.symlinkSync(fs.readlinkSync(d), path.join(root, d)); } catch (e) { if (e.code !== "EEXIST") throw e; }
    }
  }
}

const SIGNAL_NUMBERS = { SIGKILL: 9, SIGTERM: 15 };

// One started process. Emits "data" ({stdout|stderr|pty: Buffer}) and "end" (the end event).
export class Proc extends EventEmitter {
  constructor({ sandbox, config, pty, tag, stdin, user }) {
    super();
    this.setMaxListeners(0);
    this.sandbox = sandbox;
    this.config = config;
    this.tag = tag;
    this.isPty = !!pty;
    this.stdinEnabled = !pty && stdin !== false;
    this.user = user;
    this.pid = 0;
    this.end = null;
    this.signalled = null; // the signal the fake sent, to tell a death by it from an exit with 128+N
  }

  // Spawns; resolves with the host pid of the command (bwrap's child), rejects with a message.
  start(env, cwd) {
    const root = this.sandbox.root;
    // Marks the sandbox's processes (E2B's sandboxes carry their id too): a mount namespace's number is
    // reused once it is gone, so the number alone could name another test's process.
    env = { ...env, E2B_SANDBOX_ID: this.sandbox.id };
    const cmd = ["/bin/sh", "-c", 'exec "$@"', "--", this.config.cmd, ...(this.config.args || [])];
    let child;
    if (this.isPty) {
      const { cols, rows } = this.ptySize = { cols: this.config.ptyCols, rows: this.config.ptyRows };
      child = spawn(PYTHON, [path.join(HERE, "pty_helper.py"), String(cols), String(rows), "--",
        ...bwrapArgv(root, cwd, 4), ...cmd], { env, stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"] });
    } else {
      const [bw, ...bwArgs] = bwrapArgv(root, cwd, 3);
      child = spawn(bw, [...bwArgs, ...cmd], {
        env, stdio: [this.stdinEnabled ? "pipe" : "ignore", "pipe", "pipe", "pipe"],
      });
    }
    this.child = child;
    const infoStream = child.stdio[this.isPty ? 4 : 3];
    if (this.isPty) {
      this.ctl = child.stdio[3];
      this.ctl.on("error", () => {});
    }
    if (child.stdin) child.stdin.on("error", () => {});
    this.stdin = this.isPty ? child.stdin : (this.stdinEnabled ? child.stdin : null);
    const out = this.isPty ? "pty" : "stdout";
    child.stdout.on("data", (b) => this.emit("data", { [out]: b }));
    child.stderr.on("data", (b) => {
      if (this.isPty) process.stderr.write(b); // the helper's own complaints
      else this.emit("data", { stderr: b });
    });
    return new Promise((resolve, reject) => {
      let info = "";
      let settled = false;
      const settle = (fn, v) => { if (!settled) { settled = true; fn(v); } };
      infoStream.on("data", (b) => {
        info += b.toString();
        const m = /"child-pid"\s*:\s*(\d+)/.exec(info);
        const ns = /"mnt-namespace"\s*:\s*(\d+)/.exec(info);
        if (m && ns) {
          this.pid = Number(m[1]);
          this.mntns = ns[1];
          this.sandbox.mountNamespaces.add(this.mntns);
          settle(resolve, this.pid);
        }
      });
      child.on("error", (e) => settle(reject, e.message));
      child.on("close", (code, signal) => {
        let status = code ?? 128 + (signal === "SIGKILL" ? 9 : 15);
        const sig = this.signalled;
        let end;
        if (sig && status === 128 + SIGNAL_NUMBERS[sig]) {
          const name = sig === "SIGKILL" ? "killed" : "terminated";
          end = { exitCode: -1, exited: false, status: `signal: ${name}`, error: `signal: ${name}` };
        } else if (status === 0) {
          end = { exitCode: 0, exited: true, status: "exit status 0" };
        } else {
          end = { exitCode: status, exited: true, status: `exit status ${status}`, error: `exit status ${status}` };
        }
        this.end = end;
        if (!this.pid) settle(reject, `error starting process '${[this.config.cmd, ...(this.config.args || [])].join(" ")}': exit ${status}`);
        this.emit("end", end);
      });
    });
  }

  signal(name) {
    if (this.end) return;
    this.signalled = name;
    try { process.kill(this.pid, name); } catch { /* already gone */ }
  }

  writeStdin(buf) {
    if (this.isPty) throw new Error("tty assigned to process — input should be written to the stdin, not the tty");
    if (!this.stdin || this.stdin.destroyed || this.stdinClosed) throw new Error("stdin not enabled or closed");
    this.stdin.write(buf);
  }

  writePty(buf) {
    if (!this.isPty) throw new Error("tty not assigned to process — input should be written to the pty, not the stdin");
    this.child.stdin.write(buf);
  }

  closeStdin() {
    if (this.isPty) throw new Error("cannot close stdin for PTY process — send Ctrl+D (0x04) instead");
    if (this.stdin && !this.stdinClosed) { this.stdinClosed = true; this.stdin.end(); }
  }

  resize(cols, rows) {
    if (!this.isPty) throw new Error("tty not assigned to process");
    this.ptySize = { cols, rows };
    this.ctl.write(`resize ${cols} ${rows}\n`);
  }
}

// Every host process whose mount namespace is one of the sandbox's: its commands and whatever they left behind.
export function killSandboxProcesses(sandbox) {
  for (const p of sandbox.processes.values()) {
    if (!p.end) { p.signalled = "SIGKILL"; try { process.kill(p.pid, "SIGKILL"); } catch {} }
  }
  signalSandboxProcesses(sandbox, "SIGKILL");
}

export function signalSandboxProcesses(sandbox, signal) {
  if (sandbox.mountNamespaces.size === 0) return;
  let entries;
  try { entries = fs.readdirSync("/proc"); } catch { return; }
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    let ns;
    try { ns = fs.readlinkSync(`/proc/${e}/ns/mnt`); } catch { continue; }
    const m = /\[(\d+)\]/.exec(ns);
    if (!m || !sandbox.mountNamespaces.has(m[1])) continue;
    let environ;
    try { environ = fs.readFileSync(`/proc/${e}/environ`, "latin1"); } catch { continue; }
    if (!environ.split("\0").includes(`E2B_SANDBOX_ID=${sandbox.id}`)) continue;
    try { process.kill(Number(e), signal); } catch {}
  }
}

export { HOST_PATH };
