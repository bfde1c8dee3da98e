// A stateful fake of E2B (control plane + envd) for sbox's tests. See README.md in this directory.
//   <pinned node> server.mjs [--port 0] [--api-key KEY] [--state DIR] [--specs DIR]
// Prints {"port":N} on stdout once listening; serves until SIGTERM/SIGINT, then kills every child and removes
// its state.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ControlPlane, paginate } from "./controlplane.mjs";
import { createEnvdConnectHandler } from "./envd.mjs";
import { handleFiles } from "./files_api.mjs";
import { createValidator } from "./openapi.mjs";
import { probeBwrap } from "./processes.mjs";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const BODY_LOG_LIMIT = 64 * 1024;

function parseArgs(argv) {
  const o = { port: 0, apiKey: "e2b_test_key", state: null, specs: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
    if (a === "--port") o.port = Number(v());
    else if (a === "--api-key") o.apiKey = v();
    else if (a === "--state") o.state = v();
    else if (a === "--specs") o.specs = v();
    else usage(`unknown argument ${a}`);
  }
  return o;
}
function usage(msg) {
  process.stderr.write(`fake-e2b: ${msg}\nusage: server.mjs [--port N] [--api-key KEY] [--state DIR] [--specs DIR]\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
// The specs: tests/fakes/specs (copies of ../shared/provider-specs, so a clone alone runs the tests).
const specs = opts.specs || process.env.SBOX_PROVIDER_SPECS || path.resolve(HERE, "../specs");
const descriptorFile = path.join(HERE, "..", "gen", "envd.binpb");
if (!fs.existsSync(descriptorFile)) usage(`${descriptorFile} is missing: run tests/fakes/setup.sh first`);
const ownState = !opts.state;
const stateDir = opts.state || fs.mkdtempSync(path.join(os.tmpdir(), "fake-e2b-"));
fs.mkdirSync(stateDir, { recursive: true });

const bwrapProblem = probeBwrap(path.join(stateDir, "probe"));
if (bwrapProblem) {
  process.stderr.write(`fake-e2b: bubblewrap cannot run here (${bwrapProblem}); sandbox commands will fail\n`);
}

const validate = createValidator(path.join(specs, "e2b", "openapi.yml"));
// Compile the schemas of the common calls now, not on a client's first request.
for (const [m, p, q, b] of [["POST", "/v2/sandboxes", "", '{"templateID":"base"}'], ["GET", "/v2/sandboxes", "limit=1&state=running&metadata=a%3Db", ""],
  ["POST", "/v2/sandboxes/x/connect", "", '{"timeout":1}'], ["POST", "/sandboxes/x/timeout", "", '{"timeout":1}'],
  ["POST", "/sandboxes/x/pause", "", "{}"], ["POST", "/sandboxes/x/snapshots", "", "{}"], ["GET", "/snapshots", "limit=1", ""]]) {
  validate(m, p, new URLSearchParams(q), b, "application/json");
}
const cp = new ControlPlane(stateDir);
const envdHandler = createEnvdConnectHandler(descriptorFile);
let faults = [];
let requests = [];

function err(code, message) { return { code, message }; }
function send(res, status, body, headers = {}) {
  if (body === undefined || status === 204) { res.writeHead(status, headers); res.end(); return; }
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(text);
}
function envdGone(res, id) {
  send(res, 502, { sandboxId: id, message: "The sandbox was not found", code: 502 });
}
function notFound(res, id) { send(res, 404, err(404, `sandbox "${id}" doesn't exist or you don't have access to it`)); }

function takeFault(method, pathname) {
  for (const f of faults) {
    if (f.method && f.method.toUpperCase() !== method) continue;
    const ok = f.path.startsWith("re:") ? new RegExp(f.path.slice(3)).test(pathname) : f.path === pathname;
    if (!ok) continue;
    if (--f.times <= 0) faults = faults.filter((x) => x !== f);
    return f;
  }
  return null;
}

// Stops the response after N complete Connect envelopes and destroys the socket (no end-of-stream frame).
function cutAfterFrames(res, n) {
  const origWrite = res.write.bind(res);
  const origEnd = res.end.bind(res);
  let buf = Buffer.alloc(0);
  let frames = 0;
  let dead = false;
  const feed = (chunk) => {
    if (dead || !chunk) return;
    buf = Buffer.concat([buf, Buffer.from(chunk)]);
    while (buf.length >= 5 && frames < n) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      origWrite(buf.subarray(0, 5 + len));
      buf = buf.subarray(5 + len);
      frames++;
    }
    if (frames >= n) {
      dead = true;
      setImmediate(() => res.socket?.destroy());
    }
  };
  res.write = (chunk, enc, cb) => { feed(chunk); if (typeof enc === "function") enc(); else if (cb) cb(); return true; };
  res.end = (chunk, enc, cb) => { feed(typeof chunk === "function" ? null : chunk); if (!dead) { dead = true; res.socket?.destroy(); } return res; };
  if (n === 0) { res.flushHeaders(); dead = true; setImmediate(() => res.socket?.destroy()); }
}

async function handleControl(req, res, url, bodyText, rec) {
  const key = req.headers["x-api-key"];
  if (!key) return send(res, 401, err(401, "authorization header is missing"));
  if (key !== opts.apiKey) return send(res, 401, err(401, "Invalid API key, it must start with 'e2b_'" ));
  const problem = validate(req.method, url.pathname, url.searchParams, bodyText, req.headers["content-type"]);
  if (problem) {
    rec.valid = false;
    rec.problem = problem;
    if (!problem.startsWith("no such operation")) return send(res, 400, err(400, problem));
  }
  const body = bodyText ? JSON.parse(bodyText) : {};
  const p = url.pathname;
  const q = url.searchParams;
  let m;
  if (req.method === "POST" && p === "/v2/sandboxes") {
    const [status, out] = cp.create(body);
    return send(res, status, out);
  }
  if (req.method === "GET" && (p === "/v2/sandboxes" || p === "/sandboxes")) {
    let list = [...cp.sandboxes.values()].sort((a, b) => b.startedAt - a.startedAt);
    const states = q.get("state") ? q.get("state").split(",") : p === "/sandboxes" ? ["running"] : ["running", "paused"];
    list = list.filter((s) => states.includes(s.state));
    if (q.get("metadata")) {
      const want = new URLSearchParams(q.get("metadata"));
      list = list.filter((s) => [...want].every(([k, v]) => s.metadata[k] === v));
    }
    if (p === "/sandboxes") return send(res, 200, list.map((s) => cp.listed(s)));
    const pg = paginate(list, q.get("limit"), q.get("nextToken"));
    if (!pg) return send(res, 400, err(400, "invalid next token"));
    return send(res, 200, pg.page.map((s) => cp.listed(s)), pg.next ? { "X-Next-Token": pg.next } : {});
  }
  if ((m = /^\/(?:v2\/)?sandboxes\/([^/]+)(\/.*)?$/.exec(p))) {
    const id = m[1];
    const rest = m[2] || "";
    const sb = cp.sandboxes.get(id);
    if (!sb) return notFound(res, id);
    if (req.method === "GET" && rest === "") return send(res, 200, cp.detail(sb));
    if (req.method === "DELETE" && rest === "") { cp.kill(sb); return send(res, 204); }
    if (req.method === "POST" && rest === "/connect") {
      // Without a timeout the sandbox keeps the one it was created with.
      const timeout = body.timeout ?? sb.timeoutSeconds;
      if (sb.state === "paused") { cp.resume(sb, timeout); return send(res, 201, cp.sandboxBody(sb)); }
      // TTL is only extended
      if (Date.now() + timeout * 1000 > sb.endAt.getTime()) cp.setTimeout(sb, timeout);
      return send(res, 200, cp.sandboxBody(sb));
    }
    if (req.method === "POST" && rest === "/resume") {
      if (sb.state !== "paused") return send(res, 409, err(409, `sandbox ${id} is already running`));
      cp.resume(sb, body.timeout ?? 15);
      return send(res, 201, cp.sandboxBody(sb));
    }
    if (req.method === "POST" && rest === "/timeout") {
      if (sb.state === "paused") return notFound(res, id);
      cp.setTimeout(sb, body.timeout); return send(res, 204);
    }
    if (req.method === "POST" && rest === "/pause") {
      if (sb.state === "paused") return send(res, 409, err(409, `sandbox ${id} is already paused`));
      cp.pause(sb); return send(res, 204);
    }
    if (req.method === "POST" && rest === "/snapshots") {
      const s = cp.snapshot(sb, body.name);
      return send(res, 201, { snapshotID: s.snapshotID, names: s.names });
    }
  }
  if (req.method === "GET" && p === "/snapshots") {
    let list = [...cp.snapshots.values()].sort((a, b) => b.createdAt - a.createdAt);
    if (q.get("sandboxID")) list = list.filter((s) => s.sandboxID === q.get("sandboxID"));
    if (q.get("name")) list = list.filter((s) => s.snapshotID === q.get("name") || s.names.includes(q.get("name")));
    const pg = paginate(list, q.get("limit"), q.get("nextToken"));
    if (!pg) return send(res, 400, err(400, "invalid next token"));
    return send(res, 200, pg.page.map((s) => ({ snapshotID: s.snapshotID, names: s.names })), pg.next ? { "X-Next-Token": pg.next } : {});
  }
  if (req.method === "DELETE" && (m = /^\/templates\/(.+)$/.exec(p))) {
    const ref = decodeURIComponent(m[1]);
    if (!cp.deleteSnapshot(ref)) return send(res, 404, err(404, `template '${ref}' not found`));
    return send(res, 204);
  }
  if (req.method === "GET" && p === "/health") return send(res, 200, { message: "Health check successful" });
  return send(res, 404, err(404, `the fake does not implement ${req.method} ${p}`));
}

function handleEnvd(req, res, url, body, id) {
  const sb = cp.sandboxes.get(id);
  const port = req.headers["e2b-sandbox-port"];
  if (!sb || sb.state !== "running") return envdGone(res, id);
  if (port !== "49983") {
    return send(res, 502, { sandboxId: id, message: "The sandbox is running but port is not open", port: Number(port), code: 502 });
  }
  const isRpc = /^\/(process\.Process|filesystem\.Filesystem)\//.test(url.pathname);
  if (isRpc && req.headers["x-access-token"] !== sb.envdAccessToken) {
    return send(res, 401, err(401, "unauthorized access, please provide a valid access token or method signing if supported"));
  }
  if (!isRpc) return handleFiles(req, res, url, sb, body);
  req.fakeSandbox = sb;
  const t = req.headers["connect-timeout-ms"];
  if (t !== undefined) {
    // envd applies the deadline itself (see envd.mjs): connect-node's own would answer with other words.
    if (!/^\d{1,10}$/.test(t)) return send(res, 400, err(400, `invalid Connect-Timeout-Ms: ${t}`));
    req.fakeTimeoutMs = Number(t);
    delete req.headers["connect-timeout-ms"];
  }
  req[Symbol.asyncIterator] = async function* () { if (body.length) yield body; };
  envdHandler(req, res);
}

function handleFake(req, res, url, bodyText) {
  const p = url.pathname;
  if (p === "/_fake/faults" && req.method === "POST") {
    let rule;
    try { rule = JSON.parse(bodyText); } catch (e) { return send(res, 400, err(400, `not JSON: ${e.message}`)); }
    if (!rule.path) return send(res, 400, err(400, "a fault needs a path"));
    const actions = ["status", "action"].filter((k) => rule[k] !== undefined);
    if (actions.length !== 1) return send(res, 400, err(400, "a fault needs exactly one of status or action"));
    if (rule.action && !["cut", "delay", "malformed", "vanish"].includes(rule.action)) return send(res, 400, err(400, `unknown action ${rule.action}`));
    rule.times = rule.times ?? 1;
    faults.push(rule);
    return send(res, 201, { ok: true, faults: faults.length });
  }
  if (p === "/_fake/faults" && req.method === "DELETE") { faults = []; return send(res, 204); }
  if (p === "/_fake/faults" && req.method === "GET") return send(res, 200, faults);
  if (p === "/_fake/requests" && req.method === "GET") return send(res, 200, requests);
  if (p === "/_fake/requests" && req.method === "DELETE") { requests = []; return send(res, 204); }
  if (p === "/_fake/sandboxes" && req.method === "GET") {
    return send(res, 200, [...cp.sandboxes.values()].map((s) => ({
      ...cp.detail(s), root: s.root, envVars: s.envVars, autoPause: s.autoPause,
      processes: [...s.processes.values()].map((x) => ({ pid: x.pid, cmd: x.config.cmd, args: x.config.args, tag: x.tag, pty: x.isPty, ptySize: x.ptySize })),
    })));
  }
  if (p === "/_fake/snapshots" && req.method === "GET") return send(res, 200, [...cp.snapshots.values()]);
  return send(res, 404, err(404, `no fake endpoint ${req.method} ${p}`));
}

const server = http.createServer((req, res) => {
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, "http://fake");
    const isFake = url.pathname.startsWith("/_fake/");
    const rec = {
      method: req.method, path: req.url, headers: req.headersDistinct,
      body: body.subarray(0, BODY_LOG_LIMIT).toString("utf8"), status: 0, ms: 0, valid: true,
    };
    if (!isFake) requests.push(rec);
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = (status, ...rest) => {
      res.setHeader("X-Fake-Handling-Ms", ms().toFixed(3));
      return origWriteHead(status, ...rest);
    };
    res.on("finish", () => { rec.status = res.statusCode; rec.ms = ms(); });
    res.on("close", () => { if (!rec.status) { rec.status = res.statusCode; rec.ms = ms(); rec.aborted = true; } });
    try {
      if (isFake) return handleFake(req, res, url, body.toString());
      const sandboxId = req.headers["e2b-sandbox-id"];
      const fault = takeFault(req.method, url.pathname);
      if (fault) {
        rec.fault = fault.status !== undefined ? `status ${fault.status}` : fault.action;
        if (fault.status !== undefined) {
          res.writeHead(fault.status, { "Content-Type": "application/json", ...(fault.headers || {}) });
          res.end(fault.body ?? JSON.stringify(err(fault.status, "injected by the fake")));
          return;
        }
        if (fault.action === "delay") await new Promise((r) => setTimeout(r, fault.ms || 0));
        if (fault.action === "malformed") {
          const stream = /connect\+json/.test(req.headers["content-type"] || "");
          res.writeHead(200, { "Content-Type": stream ? "application/connect+json" : "application/json" });
          if (stream) {
            const junk = Buffer.from('{"event": {"start": ');
            const head = Buffer.alloc(5); head.writeUInt32BE(junk.length, 1);
            res.end(Buffer.concat([head, junk]));
          } else res.end('{"sandboxID": "broken');
          return;
        }
        if (fault.action === "vanish") {
          const id = sandboxId || /^\/(?:v2\/)?sandboxes\/([^/]+)/.exec(url.pathname)?.[1];
          const sb = id && cp.sandboxes.get(id);
          if (sb) cp.kill(sb);
        }
        if (fault.action === "cut") cutAfterFrames(res, fault.afterFrames ?? 0);
      }
      if (sandboxId !== undefined) return handleEnvd(req, res, url, body, sandboxId);
      await handleControl(req, res, url, body.toString(), rec);
    } catch (e) {
      process.stderr.write(`fake-e2b: ${req.method} ${req.url}: ${e.stack || e}\n`);
      if (!res.headersSent) send(res, 500, err(500, `fake: ${e.message}`));
      else res.destroy();
    }
  });
});
server.keepAliveTimeout = 60_000;

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  cp.shutdown();
  server.close();
  server.closeAllConnections?.();
  try { if (ownState) fs.rmSync(stateDir, { recursive: true, force: true }); else {
    fs.rmSync(path.join(stateDir, "sandboxes"), { recursive: true, force: true });
    fs.rmSync(path.join(stateDir, "snapshots"), { recursive: true, force: true });
    fs.rmSync(path.join(stateDir, "probe"), { recursive: true, force: true });
  } } catch { /* best effort */ }
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

server.listen(opts.port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
