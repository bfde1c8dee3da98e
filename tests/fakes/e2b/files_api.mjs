// envd's HTTP file API (envd.yaml): GET /files, POST /files, GET /health.
import fs from "node:fs";
import path from "node:path";
import { expandAndResolve, hostPath, resolveInSandbox } from "./paths.mjs";
import { ensureDirs, userFromName } from "./envd.mjs";

function jsonError(res, code, message) {
  const body = JSON.stringify({ code, message }) + "\n";
  res.writeHead(code, { "Content-Type": "application/json; charset=utf-8", "X-Content-Type-Options": "nosniff" });
  res.end(body);
}

// envd lets /files through without the access token only with a signature, which the fake does not issue.
function checkSigning(req, url, sb) {
  const token = req.headers["x-access-token"];
  if (token) return token === sb.envdAccessToken ? null : "access token present in header but does not match";
  if (!url.searchParams.has("signature")) return "missing signature query parameter";
  return "invalid signature";
}

function parseMultipart(body, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!m) throw new Error("no multipart boundary param in Content-Type");
  const boundary = Buffer.from("--" + (m[1] || m[2]).trim());
  const parts = [];
  let pos = body.indexOf(boundary);
  if (pos < 0) throw new Error("multipart: NextPart: EOF");
  for (;;) {
    pos += boundary.length;
    if (body.slice(pos, pos + 2).toString() === "--") break;
    if (body.slice(pos, pos + 2).toString() === "\r\n") pos += 2;
    const headEnd = body.indexOf("\r\n\r\n", pos);
    if (headEnd < 0) throw new Error("multipart: malformed part header");
    const headers = {};
    for (const line of body.slice(pos, headEnd).toString().split("\r\n")) {
      const i = line.indexOf(":");
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), boundary]), headEnd + 4);
    if (next < 0) throw new Error("multipart: unexpected EOF");
    const disp = headers["content-disposition"] || "";
    const name = /\bname="([^"]*)"/.exec(disp)?.[1];
    const filename = /\bfilename="([^"]*)"/.exec(disp)?.[1];
    parts.push({ name, filename, data: body.slice(headEnd + 4, next) });
    pos = next + 2;
  }
  return parts;
}

function writeFile(sb, p, data) {
  const dir = path.posix.dirname(p);
  try { ensureDirs(sb, dir); } catch (e) { return [500, `error ensuring directories: ${e.message}`]; }
  const real = path.posix.join(resolveInSandbox(sb.root, dir), path.posix.basename(p));
  const hp = hostPath(sb.root, resolveInSandbox(sb.root, real));
  try {
    if (fs.statSync(hp).isDirectory()) return [400, `path is a directory: ${p}`];
  } catch { /* new file */ }
  try { fs.writeFileSync(hp, data); } catch (e) {
    if (e.code === "ENOSPC") return [507, "not enough disk space available"];
    return [500, `error opening file: ${e.message}`];
  }
  return null;
}

export function handleFiles(req, res, url, sb, body) {
  if (url.pathname === "/health" && req.method === "GET") { res.writeHead(204); res.end(); return; }
  if (url.pathname !== "/files" || (req.method !== "GET" && req.method !== "POST")) {
    res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }); res.end("404 page not found\n"); return;
  }
  const signErr = checkSigning(req, url, sb);
  if (signErr) return jsonError(res, 401, signErr);
  const username = url.searchParams.get("username") || "user";
  const user = userFromName(username);
  if (!user) return jsonError(res, 401, `error looking up user '${username}': user: unknown user ${username}`);
  const pathParam = url.searchParams.get("path");

  if (req.method === "GET") {
    let p;
    try { p = expandAndResolve(pathParam ?? "", user); } catch (e) {
      return jsonError(res, 400, `error expanding and resolving path '${pathParam}': ${e.message}`);
    }
    let hp, st;
    try { hp = hostPath(sb.root, resolveInSandbox(sb.root, p)); st = fs.statSync(hp); } catch (e) {
      if (e.code === "ENOENT" || e.code === "ENOTDIR") return jsonError(res, 404, `path '${p}' does not exist`);
      return jsonError(res, 500, `error checking if path exists '${p}': ${e.message}`);
    }
    if (st.isDirectory()) return jsonError(res, 400, `path '${p}' is a directory`);
    const data = fs.readFileSync(hp);
    res.writeHead(200, {
      "Content-Type": "application/octet-stream", "Content-Length": data.length, "Vary": "Accept-Encoding",
      "Content-Disposition": `inline; filename="${path.posix.basename(p)}"`,
    });
    res.end(data);
    return;
  }

  const ctype = req.headers["content-type"] || "";
  const written = [];
  const put = (pathToResolve, data) => {
    let p;
    try { p = expandAndResolve(pathToResolve ?? "", user); } catch (e) { return [400, `error resolving path: ${e.message}`]; }
    if (written.some((w) => w.path === p)) {
      return [400, `you cannot upload multiple files to the same path '${p}' in one upload request, only the first specified file was uploaded`];
    }
    const err = writeFile(sb, p, data);
    if (err) return err;
    written.push({ path: p, name: path.posix.basename(p), type: "file" });
    return null;
  };
  if (/^application\/octet-stream/i.test(ctype)) {
    if (pathParam === null) return jsonError(res, 400, "path query parameter is required for raw body upload");
    const err = put(pathParam, body);
    if (err) return jsonError(res, err[0], err[1]);
  } else if (/^multipart\//i.test(ctype)) {
    let parts;
    try { parts = parseMultipart(body, ctype); } catch (e) { return jsonError(res, 500, `error parsing multipart form: ${e.message}`); }
    for (const part of parts) {
      if (part.name !== "file") continue;
      const err = put(pathParam ?? part.filename, part.data);
      if (err) return jsonError(res, err[0], err[1]);
    }
  } else {
    return jsonError(res, 400, `unsupported content type: ${ctype}, expected multipart/form-data or application/octet-stream`);
  }
  const out = JSON.stringify(written);
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(out);
}
