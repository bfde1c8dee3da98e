// How a sandbox path maps onto this host. A sandbox's processes see its scratch directory at / with the host's
// system directories bound read-only over it; the files API resolves every path the same way, following
// symlinks inside that view (an absolute link target is taken relative to the sandbox's /, never the host's).
import fs from "node:fs";
import path from "node:path";

export const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];
export const USERS = { user: { name: "user", home: "/home/user", uid: 1000 }, root: { name: "root", home: "/root", uid: 0 } };

// As envd: "~" and "~/x" expand to the user's home; a relative path is taken from the user's home.
export function expandAndResolve(p, user) {
  if (p === undefined || p === null) p = "";
  if (p.startsWith("~")) {
    if (p.length > 1 && p[1] !== "/") {
      throw new Error(`failed to expand path '${p}' for user '${user.name}': cannot expand user-specific home dir`);
    }
    p = path.posix.join(user.home, p.slice(1));
  }
  if (p.startsWith("/")) return path.posix.normalize(p).replace(/(.)\/$/, "$1");
  return path.posix.join(user.home, p).replace(/(.)\/$/, "$1");
}

// The host path of a sandbox path (no symlinks followed).
export function hostPath(root, sandboxPath) {
  const p = path.posix.normalize(sandboxPath);
  for (const d of SYSTEM_DIRS) {
    if (p === d || p.startsWith(d + "/")) {
      try { if (fs.lstatSync(d).isDirectory()) return p; } catch { /* not on this host: the sandbox's own */ }
    }
  }
  return path.join(root, p);
}

// Follows symlinks in every component of a sandbox path inside the sandbox's view; returns the final sandbox path.
// With followLast false the last component is not followed (lstat semantics).
export function resolveInSandbox(root, sandboxPath, followLast = true) {
  let parts = path.posix.normalize(sandboxPath).split("/").filter(Boolean);
  let done = "/";
  let hops = 0;
  while (parts.length) {
    const name = parts.shift();
    if (name === "..") { done = path.posix.dirname(done); continue; }
    const next = path.posix.join(done, name);
    if (!followLast && parts.length === 0) { done = next; break; }
    let st;
    try { st = fs.lstatSync(hostPath(root, next)); } catch { done = next; continue; }
    if (st.isSymbolicLink()) {
      if (++hops > 255) { const e = new Error("too many links"); e.code = "ELOOP"; throw e; }
      const target = fs.readlinkSync(hostPath(root, next));
      parts = [...target.split("/").filter(Boolean), ...parts];
      done = target.startsWith("/") ? "/" : done;
      continue;
    }
    done = next;
  }
  return done;
}
