// The fake E2B control plane (api.e2b.app): sandboxes, their lifetimes, pause/resume, snapshots.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { makeScratch } from "./envd.mjs";
import { killSandboxProcesses, signalSandboxProcesses } from "./processes.mjs";

export const ENVD_VERSION = "0.6.13";
const TEMPLATES = new Set(["base", "code-interpreter-v1", "desktop"]);
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

export function newId(n = 20) {
  const b = crypto.randomBytes(n);
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[b[i] % 36];
  return s;
}

export class ControlPlane {
  constructor(stateDir) {
    this.stateDir = stateDir;
    this.sandboxes = new Map(); // id -> sandbox (killed ones are removed)
    this.snapshots = new Map(); // snapshotID -> {snapshotID, names, sandboxID, dir, createdAt}
    fs.mkdirSync(path.join(stateDir, "sandboxes"), { recursive: true });
    fs.mkdirSync(path.join(stateDir, "snapshots"), { recursive: true });
  }

  findSnapshot(ref) {
    for (const s of this.snapshots.values()) {
      if (s.snapshotID === ref || s.templateID === ref || s.names.includes(ref) || `${s.templateID}:default` === ref) return s;
    }
    return null;
  }

  create(body) {
    const templateID = body.templateID;
    const snap = this.findSnapshot(templateID);
    if (!snap && !TEMPLATES.has(templateID)) {
      return [404, { code: 404, message: `template '${templateID}' not found` }];
    }
    const id = newId();
    const root = path.join(this.stateDir, "sandboxes", id);
    if (snap) fs.cpSync(snap.dir, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    else makeScratch(root);
    const now = new Date();
    const sb = {
      id, root, templateID: snap ? snap.templateID : templateID, alias: snap ? undefined : templateID,
      envVars: { ...(body.envVars || {}) }, metadata: { ...(body.metadata || {}) },
      autoPause: !!body.autoPause, allowInternetAccess: body.allow_internet_access, network: body.network,
      startedAt: now, state: "running", envdAccessToken: newId(32), trafficAccessToken: null,
      processes: new Map(), terminated: new Map(), mountNamespaces: new Set(),
    };
    this.sandboxes.set(id, sb);
    sb.timeoutSeconds = body.timeout ?? 15;
    this.setTimeout(sb, sb.timeoutSeconds);
    return [201, this.sandboxBody(sb)];
  }

  sandboxBody(sb) {
    return {
      sandboxID: sb.id, templateID: sb.templateID, alias: sb.alias, clientID: "6532622b",
      envdVersion: ENVD_VERSION, envdAccessToken: sb.envdAccessToken, trafficAccessToken: sb.trafficAccessToken,
      domain: null,
    };
  }

  listed(sb) {
    return {
      templateID: sb.templateID, alias: sb.alias, sandboxID: sb.id, clientID: "6532622b",
      startedAt: sb.startedAt.toISOString(), endAt: sb.endAt.toISOString(), cpuCount: 2, memoryMB: 512,
      diskSizeMB: 10240, metadata: sb.metadata, state: sb.state, envdVersion: ENVD_VERSION,
    };
  }

  detail(sb) {
    return {
      ...this.listed(sb), envdAccessToken: sb.envdAccessToken, domain: null,
      allowInternetAccess: sb.allowInternetAccess ?? null,
      ...(sb.network ? { network: sb.network } : {}),
      lifecycle: { autoResume: false, onTimeout: sb.autoPause ? "pause" : "kill" },
    };
  }

  setTimeout(sb, seconds) {
    clearTimeout(sb.timer);
    sb.endAt = new Date(Date.now() + seconds * 1000);
    sb.timer = setTimeout(() => {
      if (sb.autoPause) this.pause(sb);
      else this.kill(sb);
    }, Math.min(seconds * 1000, 2 ** 31 - 1));
    sb.timer.unref();
  }

  kill(sb) {
    clearTimeout(sb.timer);
    sb.state = "killed";
    this.sandboxes.delete(sb.id);
    killSandboxProcesses(sb);
    fs.rm(sb.root, { recursive: true, force: true }, () => {});
  }

  pause(sb) {
    clearTimeout(sb.timer);
    sb.state = "paused";
    signalSandboxProcesses(sb, "SIGSTOP");
  }

  resume(sb, seconds) {
    sb.state = "running";
    signalSandboxProcesses(sb, "SIGCONT");
    this.setTimeout(sb, seconds);
  }

  snapshot(sb, name) {
    const templateID = newId();
    const snapshotID = name ? `fake-team/${name}:default` : `${templateID}:default`;
    const dir = path.join(this.stateDir, "snapshots", templateID);
    fs.cpSync(sb.root, dir, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    const s = { snapshotID, templateID, names: [snapshotID], sandboxID: sb.id, dir, createdAt: new Date() };
    this.snapshots.set(snapshotID, s);
    return s;
  }

  deleteSnapshot(ref) {
    const s = this.findSnapshot(ref);
    if (!s) return false;
    this.snapshots.delete(s.snapshotID);
    fs.rm(s.dir, { recursive: true, force: true }, () => {});
    return true;
  }

  shutdown() {
    for (const sb of [...this.sandboxes.values()]) {
      clearTimeout(sb.timer);
      killSandboxProcesses(sb);
    }
    this.sandboxes.clear();
  }
}

// One page of items, newest first; the token is the offset, opaque to clients.
export function paginate(items, limitParam, tokenParam) {
  const limit = Math.max(1, Math.min(100, Number(limitParam) || 100));
  let offset = 0;
  if (tokenParam) {
    const m = /^o(\d+)$/.exec(Buffer.from(tokenParam, "base64url").toString());
    if (!m) return null;
    offset = Number(m[1]);
  }
  const page = items.slice(offset, offset + limit);
  const next = offset + limit < items.length ? Buffer.from(`o${offset + limit}`).toString("base64url") : null;
  return { page, next };
}
