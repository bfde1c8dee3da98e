// The fake envd: process.Process and filesystem.Filesystem over Connect (@connectrpc/connect-node), and the
// HTTP file API of envd.yaml. Behaviour follows envd's sources (e2b-dev/infra packages/envd).
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Proc, HOST_PATH, makeSystemLinks } from "./processes.mjs";
import { USERS, expandAndResolve, hostPath, resolveInSandbox } from "./paths.mjs";

export const kSandbox = createContextKey(null);
export const kTimeoutMs = createContextKey(0);

const RETAIN_MS = 30_000; // envd keeps a finished process's end event this long for a late Connect

function loadServices(descriptorFile) {
  const set = fromBinary(FileDescriptorSetSchema, fs.readFileSync(descriptorFile));
  const reg = createFileRegistry(set);
  return { Process: reg.getService("process.Process"), Filesystem: reg.getService("filesystem.Filesystem") };
}

// The user of a request, as envd's authn middleware: Basic auth's username, else the default user "user".
function authUser(ctx) {
  const h = ctx.requestHeader.get("authorization");
  if (!h) return USERS.user;
  const m = /^Basic\s+(.+)$/i.exec(h);
  if (!m) throw new ConnectError("invalid username: ''", Code.Unauthenticated);
  const name = Buffer.from(m[1], "base64").toString().split(":")[0];
  if (!USERS[name]) throw new ConnectError(`invalid username: '${name}'`, Code.Unauthenticated);
  return USERS[name];
}

export function userFromName(name) {
  return USERS[name || "user"] || null;
}

// A queue of events for one stream.
class Queue {
  constructor() { this.items = []; this.waiter = null; }
  push(x) { this.items.push(x); if (this.waiter) { const w = this.waiter; this.waiter = null; w(); } }
  async next(signal) {
    while (this.items.length === 0) {
      await new Promise((r) => { this.waiter = r; signal.addEventListener("abort", r, { once: true }); });
      if (signal.aborted) return null;
    }
    return this.items.shift();
  }
}

function dataEvent(d) {
  const [k, v] = Object.entries(d)[0];
  return { event: { event: { case: "data", value: { output: { case: k, value: new Uint8Array(v) } } } } };
}
function endEvent(e) {
  return { event: { event: { case: "end", value: { exitCode: e.exitCode, exited: e.exited, status: e.status, error: e.error } } } };
}
const keepaliveEvent = { event: { event: { case: "keepalive", value: {} } } };
const startEvent = (pid) => ({ event: { event: { case: "start", value: { pid } } } });

// Streams a process's events (after the start event) until its end, the deadline, or the client going away.
async function* follow(proc, ctx, { includeStart }) {
  const q = new Queue();
  const onData = (d) => q.push({ data: d });
  const onEnd = (e) => q.push({ end: e });
  proc.on("data", onData);
  proc.on("end", onEnd);
  const ac = new AbortController();
  const abort = () => ac.abort();
  ctx.signal.addEventListener("abort", abort, { once: true });
  const ka = Number(ctx.requestHeader.get("keepalive-ping-interval"));
  const kaMs = (Number.isInteger(ka) && ka > 0 ? ka : 90) * 1000;
  let kaTimer;
  const armKeepalive = () => { clearTimeout(kaTimer); kaTimer = setTimeout(() => { q.push({ keepalive: true }); }, kaMs); };
  const timeoutMs = ctx.values.get(kTimeoutMs);
  let deadlineTimer;
  if (timeoutMs > 0) {
    deadlineTimer = setTimeout(() => {
      q.push({ deadline: true });
    }, timeoutMs);
  }
  try {
    if (includeStart) yield startEvent(proc.pid);
    if (proc.end) { yield endEvent(proc.end); return; }
    armKeepalive();
    for (;;) {
      const item = await q.next(ac.signal);
      if (!item) return;
      if (item.deadline) throw new ConnectError("context deadline exceeded", Code.DeadlineExceeded);
      if (item.keepalive) { armKeepalive(); yield keepaliveEvent; continue; }
      if (item.data) { armKeepalive(); yield dataEvent(item.data); continue; }
      if (item.end) { yield endEvent(item.end); return; }
    }
  } finally {
    clearTimeout(kaTimer);
    clearTimeout(deadlineTimer);
    proc.off("data", onData);
    proc.off("end", onEnd);
    ctx.signal.removeEventListener("abort", abort);
  }
}

function findProc(sb, selector, { running = true } = {}) {
  const sel = selector?.selector;
  const pool = running ? [...sb.processes.values()] : [...sb.processes.values(), ...sb.terminated.values()];
  if (sel?.case === "pid") {
    const p = pool.find((x) => x.pid === sel.value);
    if (!p) throw new ConnectError(`process with pid ${sel.value} not found`, Code.NotFound);
    return p;
  }
  if (sel?.case === "tag") {
    const p = pool.find((x) => x.tag === sel.value);
    if (!p) throw new ConnectError(`process with tag ${sel.value} not found`, Code.NotFound);
    return p;
  }
  throw new ConnectError(`invalid input type ${sel?.case}`, Code.Unimplemented);
}

function processService(sbOf) {
  return {
    async *start(req, ctx) {
      const sb = sbOf(ctx);
      const user = authUser(ctx);
      const cfg = req.process || {};
      let cwd;
      try { cwd = expandAndResolve(cfg.cwd ?? "", user); } catch (e) { throw new ConnectError(e.message, Code.InvalidArgument); }
      const realCwd = resolveInSandbox(sb.root, cwd);
      if (!fs.existsSync(hostPath(sb.root, realCwd))) {
        throw new ConnectError(`cwd '${cwd}' does not exist`, Code.InvalidArgument);
      }
      const env = { PATH: HOST_PATH, HOME: user.home, USER: user.name, LOGNAME: user.name, ...sb.envVars };
      for (const [k, v] of Object.entries(cfg.envs || {})) env[k] = v;
      const proc = new Proc({
        sandbox: sb, user, tag: req.tag,
        stdin: req.stdin === undefined ? true : req.stdin,
        pty: req.pty,
        config: { cmd: cfg.cmd, args: [...(cfg.args || [])], envs: { ...(cfg.envs || {}) }, cwd: cfg.cwd,
          ptyCols: req.pty?.size?.cols ?? 0, ptyRows: req.pty?.size?.rows ?? 0 },
      });
      // Subscribe before the process exists, so no output is lost.
      const early = [];
      const keep = (d) => early.push(d);
      proc.on("data", keep);
      try {
        await proc.start(env, realCwd);
      } catch (e) {
        throw new ConnectError(String(e), Code.InvalidArgument);
      } finally {
        proc.off("data", keep);
      }
      sb.processes.set(proc.pid, proc);
      // As envd: Connect-Timeout-Ms is also the process's lifetime, whether or not the client still listens.
      const timeoutMs = ctx.values.get(kTimeoutMs);
      const lifetime = timeoutMs > 0 ? setTimeout(() => proc.signal("SIGKILL"), timeoutMs) : null;
      proc.once("end", () => {
        clearTimeout(lifetime);
        sb.processes.delete(proc.pid);
        sb.terminated.set(proc.pid, proc);
        setTimeout(() => { if (sb.terminated.get(proc.pid) === proc) sb.terminated.delete(proc.pid); }, RETAIN_MS).unref();
      });
      yield startEvent(proc.pid);
      for (const d of early) yield dataEvent(d);
      yield* follow(proc, ctx, { includeStart: false });
    },
    async *connect(req, ctx) {
      const sb = sbOf(ctx);
      const proc = findProc(sb, req.process, { running: false });
      yield* follow(proc, ctx, { includeStart: true });
    },
    async list(_req, ctx) {
      const sb = sbOf(ctx);
      return {
        processes: [...sb.processes.values()].map((p) => ({
          pid: p.pid, tag: p.tag,
          config: { cmd: p.config.cmd, args: p.config.args, envs: p.config.envs, cwd: p.config.cwd },
        })),
      };
    },
    async sendInput(req, ctx) {
      const proc = findProc(sbOf(ctx), req.process);
      const inp = req.input?.input;
      try {
        if (inp?.case === "pty") proc.writePty(Buffer.from(inp.value));
        else if (inp?.case === "stdin") proc.writeStdin(Buffer.from(inp.value));
        else throw new ConnectError(`invalid input type ${inp?.case}`, Code.Unimplemented);
      } catch (e) {
        if (e instanceof ConnectError) throw e;
        throw new ConnectError(`error writing to ${inp.case === "pty" ? "tty" : "stdin"}: ${e.message}`, Code.Internal);
      }
      return {};
    },
    async closeStdin(req, ctx) {
      const proc = findProc(sbOf(ctx), req.process);
      try { proc.closeStdin(); } catch (e) { throw new ConnectError(`error closing stdin: ${e.message}`, Code.Unknown); }
      return {};
    },
    async sendSignal(req, ctx) {
      const proc = findProc(sbOf(ctx), req.process);
      const name = req.signal === 9 ? "SIGKILL" : req.signal === 15 ? "SIGTERM" : null;
      if (!name) throw new ConnectError(`invalid signal: ${req.signal}`, Code.Unimplemented);
      proc.signal(name);
      return {};
    },
    async update(req, ctx) {
      const proc = findProc(sbOf(ctx), req.process);
      if (req.pty) {
        try { proc.resize(req.pty.size?.cols ?? 0, req.pty.size?.rows ?? 0); } catch (e) {
          throw new ConnectError(`error resizing tty: ${e.message}`, Code.Internal);
        }
      }
      return {};
    },
  };
}

// ---- filesystem ----

const uidNames = new Map();
function idName(file, id) {
  const key = `${file}:${id}`;
  if (uidNames.has(key)) return uidNames.get(key);
  let name = String(id);
  try {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      const f = line.split(":");
      if (f[2] === String(id)) { name = f[0]; break; }
    }
  } catch { /* no database */ }
  uidNames.set(key, name);
  return name;
}

function goPermissions(st) {
  const t = st.isDirectory() ? "d" : st.isSymbolicLink() ? "L" : st.isFIFO() ? "p" : st.isSocket() ? "S"
    : st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "D" : "-";
  const rwx = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += st.mode & (1 << (8 - i)) ? rwx[i] : "-";
  return (t === "c" ? "Dc" : t) + s;
}

// envd's EntryInfo for a sandbox path (lstat; a symlink reports its target's type and permission bits).
export function entryInfo(sb, sandboxPath) {
  const hp = hostPath(sb.root, sandboxPath);
  const st = fs.lstatSync(hp);
  let type = st.isFile() ? 1 : st.isDirectory() ? 2 : st.isSymbolicLink() ? 3 : 0;
  let mode = st.mode & 0o777;
  let symlinkTarget;
  if (st.isSymbolicLink()) {
    symlinkTarget = resolveInSandbox(sb.root, sandboxPath);
    try {
      const t = fs.statSync(hostPath(sb.root, symlinkTarget));
      type = t.isFile() ? 1 : t.isDirectory() ? 2 : 0;
      mode = t.mode & 0o777;
    } catch { type = 0; mode = 0; }
  }
  return {
    name: path.posix.basename(sandboxPath), type, path: sandboxPath, size: BigInt(st.size), mode,
    permissions: goPermissions(st), owner: idName("/etc/passwd", st.uid), group: idName("/etc/group", st.gid),
    modifiedTime: timestampFromDate(st.mtime), symlinkTarget, metadata: {},
  };
}

function fsError(e, what) {
  if (e instanceof ConnectError) return e;
  if (e.code === "ENOENT") return new ConnectError(`${what}: ${e.message}`, Code.NotFound);
  return new ConnectError(`${what}: ${e.message}`, Code.Internal);
}

function resolveArg(p, ctx) {
  try { return expandAndResolve(p, authUser(ctx)); } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw new ConnectError(e.message, Code.InvalidArgument);
  }
}

function ensureDirs(sb, dir) {
  const parts = dir.split("/").filter(Boolean);
  let cur = "/";
  for (const part of parts) {
    cur = path.posix.join(cur, part);
    const hp = hostPath(sb.root, resolveInSandbox(sb.root, cur));
    let st;
    try { st = fs.statSync(hp); } catch { fs.mkdirSync(hp, { mode: 0o755 }); continue; }
    if (!st.isDirectory()) throw new Error(`path is a file: ${cur}`);
  }
}
export { ensureDirs };

function filesystemService(sbOf) {
  return {
    async stat(req, ctx) {
      const sb = sbOf(ctx);
      const p = resolveArg(req.path, ctx);
      try { return { entry: entryInfo(sb, resolveInSandbox(sb.root, p, false)) }; } catch (e) {
        throw e.code === "ENOENT" ? new ConnectError(`file not found: ${e.message.replace(sb.root, "")}`, Code.NotFound)
          : fsError(e, "error getting file info");
      }
    },
    async makeDir(req, ctx) {
      const sb = sbOf(ctx);
      const p = resolveArg(req.path, ctx);
      const hp = hostPath(sb.root, resolveInSandbox(sb.root, p));
      let st = null;
      try { st = fs.statSync(hp); } catch (e) { if (e.code !== "ENOENT") throw fsError(e, "error getting file info"); }
      if (st?.isDirectory()) throw new ConnectError(`directory already exists: ${p}`, Code.AlreadyExists);
      if (st) throw new ConnectError(`path already exists but it is not a directory: ${p}`, Code.InvalidArgument);
      try { ensureDirs(sb, p); } catch (e) { throw new ConnectError(e.message, Code.Internal); }
      return { entry: entryInfo(sb, p) };
    },
    async move(req, ctx) {
      const sb = sbOf(ctx);
      const src = resolveArg(req.source, ctx);
      const dst = resolveArg(req.destination, ctx);
      try { ensureDirs(sb, path.posix.dirname(dst)); } catch (e) { throw new ConnectError(e.message, Code.Internal); }
      try {
        fs.renameSync(hostPath(sb.root, resolveInSandbox(sb.root, src, false)),
          hostPath(sb.root, path.posix.join(resolveInSandbox(sb.root, path.posix.dirname(dst)), path.posix.basename(dst))));
      } catch (e) {
        if (e.code === "ENOENT") throw new ConnectError(`source file not found: ${src}`, Code.NotFound);
        throw new ConnectError(`error renaming: ${e.message}`, Code.Internal);
      }
      return { entry: entryInfo(sb, dst) };
    },
    async listDir(req, ctx) {
      const sb = sbOf(ctx);
      const depth = req.depth || 1;
      const p = resolveArg(req.path, ctx);
      let real;
      try { real = resolveInSandbox(sb.root, p); } catch (e) {
        throw new ConnectError(`cyclic symlink or chain >255 links at "${p}"`, Code.FailedPrecondition);
      }
      let st;
      try { st = fs.statSync(hostPath(sb.root, real)); } catch (e) {
        throw new ConnectError(`path not found: ${p}`, Code.NotFound);
      }
      if (!st.isDirectory()) throw new ConnectError(`path is not a directory: ${real}`, Code.InvalidArgument);
      const entries = [];
      const walk = (dirReal, dirShown, level) => {
        let names;
        try { names = fs.readdirSync(hostPath(sb.root, dirReal)).sort(); } catch (e) { throw fsError(e, `error reading directory ${dirReal}`); }
        for (const n of names) {
          const shown = path.posix.join(dirShown, n);
          const realChild = path.posix.join(dirReal, n);
          let info;
          try { info = entryInfo(sb, realChild); } catch { continue; }
          info.path = shown;
          entries.push(info);
          // filepath.WalkDir does not follow symlinked directories
          if (level < depth && fs.lstatSync(hostPath(sb.root, realChild)).isDirectory()) walk(realChild, shown, level + 1);
        }
      };
      walk(real, p, 1);
      return { entries };
    },
    async remove(req, ctx) {
      const sb = sbOf(ctx);
      const p = resolveArg(req.path, ctx);
      try {
        const real = path.posix.join(resolveInSandbox(sb.root, path.posix.dirname(p)), path.posix.basename(p));
        fs.rmSync(hostPath(sb.root, real), { recursive: true, force: true });
      } catch (e) { throw new ConnectError(`error removing file or directory: ${e.message}`, Code.Internal); }
      return {};
    },
  };
}

export function createEnvdConnectHandler(descriptorFile) {
  const { Process, Filesystem } = loadServices(descriptorFile);
  const sbOf = (ctx) => ctx.values.get(kSandbox);
  return connectNodeAdapter({
    grpc: false, grpcWeb: false, connect: true,
    routes(router) {
      router.service(Process, processService(sbOf));
      router.service(Filesystem, filesystemService(sbOf));
    },
    contextValues(req) {
      return createContextValues().set(kSandbox, req.fakeSandbox).set(kTimeoutMs, req.fakeTimeoutMs || 0);
    },
  });
}

export const HOME_SKELETON = ["home/user", "root", "tmp", "var/tmp", "run", "proc", "dev"];
export function makeScratch(dir) {
  for (const d of HOME_SKELETON) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.chmodSync(path.join(dir, "tmp"), 0o1777);
  makeSystemLinks(dir);
}
export { os };
