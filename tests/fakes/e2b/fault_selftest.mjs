// Checks that every fault action of the fake E2B does what README.md says, with raw HTTP requests.
import assert from "node:assert/strict";
import http from "node:http";
import { startFake } from "./start_fake.mjs";

const fake = await startFake();
const KEY = { "X-API-KEY": "e2b_test_key" };
let failures = 0;
async function step(name, fn) {
  try { await fn(); console.log(`ok   ${name}`); } catch (e) { failures++; console.log(`FAIL ${name}: ${e?.stack || e}`); }
}
const api = (method, path, body, headers = {}) => fetch(fake.base + path, {
  method, headers: { ...KEY, ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
  body: body !== undefined ? JSON.stringify(body) : undefined,
});
const fault = async (rule) => assert.equal((await api("POST", "/_fake/faults", rule)).status, 201);
const create = async () => (await (await api("POST", "/v2/sandboxes", { templateID: "base", timeout: 60 })).json());
function envelope(obj) {
  const j = Buffer.from(JSON.stringify(obj));
  const h = Buffer.alloc(5); h.writeUInt32BE(j.length, 1);
  return Buffer.concat([h, j]);
}
// A raw Connect server-streaming call: resolves with the frames received and how the stream ended.
function rawStream(sb, method, msg) {
  return new Promise((resolve) => {
    const req = http.request(fake.base + `/process.Process/${method}`, {
      method: "POST",
      headers: { "Content-Type": "application/connect+json", "Connect-Protocol-Version": "1", "E2b-Sandbox-Id": sb.sandboxID,
        "E2b-Sandbox-Port": "49983", "X-Access-Token": sb.envdAccessToken },
    }, (res) => {
      let buf = Buffer.alloc(0);
      const frames = [];
      const parse = () => {
        while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
          const len = buf.readUInt32BE(1);
          frames.push({ flags: buf[0], text: buf.subarray(5, 5 + len).toString() });
          buf = buf.subarray(5 + len);
        }
      };
      res.on("data", (c) => { buf = Buffer.concat([buf, c]); parse(); });
      res.on("end", () => resolve({ status: res.statusCode, frames, how: "end", rest: buf }));
      res.on("error", () => resolve({ status: res.statusCode, frames, how: "reset", rest: buf }));
      res.on("aborted", () => resolve({ status: res.statusCode, frames, how: "reset", rest: buf }));
    });
    req.on("error", (e) => resolve({ frames: [], how: "reset", error: e }));
    req.end(envelope(msg));
  });
}
const echoStart = { process: { cmd: "/bin/sh", args: ["-c", "echo one; echo two >&2; echo three"] }, stdin: false };

await step("status: the rule's status, headers and body, once, then normal service", async () => {
  await fault({ method: "POST", path: "/v2/sandboxes", status: 429, headers: { "Retry-After": "1" }, body: '{"code":429,"message":"slow down"}' });
  const r = await api("POST", "/v2/sandboxes", { templateID: "base" });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get("retry-after"), "1");
  assert.deepEqual(await r.json(), { code: 429, message: "slow down" });
  assert.equal((await api("POST", "/v2/sandboxes", { templateID: "base" })).status, 201);
});

await step("times: a rule with times 2 fires twice; re: paths match by regex", async () => {
  await fault({ method: "GET", path: "re:^/sandboxes/[a-z0-9]+$", times: 2, status: 503 });
  const sb = await create();
  assert.equal((await api("GET", `/sandboxes/${sb.sandboxID}`)).status, 503);
  assert.equal((await api("GET", `/sandboxes/${sb.sandboxID}`)).status, 503);
  assert.equal((await api("GET", `/sandboxes/${sb.sandboxID}`)).status, 200);
});

await step("delay: answered normally, no sooner than the delay", async () => {
  await fault({ method: "GET", path: "/v2/sandboxes", action: "delay", ms: 300 });
  const t0 = Date.now();
  const r = await api("GET", "/v2/sandboxes");
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(await r.json()));
  assert.ok(Date.now() - t0 >= 290, "answered before the delay");
});

await step("malformed: 200 with JSON that does not parse (unary and stream)", async () => {
  await fault({ method: "POST", path: "/v2/sandboxes", action: "malformed" });
  const r = await api("POST", "/v2/sandboxes", { templateID: "base" });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.throws(() => JSON.parse(text));
  const sb = await create();
  await fault({ method: "POST", path: "/process.Process/Start", action: "malformed" });
  const s = await rawStream(sb, "Start", echoStart);
  assert.equal(s.status, 200);
  assert.equal(s.frames.length, 1);
  assert.throws(() => JSON.parse(s.frames[0].text));
});

await step("cut: N envelopes, then the connection is destroyed without an end-of-stream frame", async () => {
  const sb = await create();
  const whole = await rawStream(sb, "Start", echoStart);
  assert.equal(whole.how, "end");
  assert.equal(whole.frames.at(-1).flags, 2, "a normal stream ends with the end-of-stream frame");
  await fault({ method: "POST", path: "/process.Process/Start", action: "cut", afterFrames: 1 });
  const cut = await rawStream(sb, "Start", echoStart);
  assert.equal(cut.frames.length, 1);
  assert.match(cut.frames[0].text, /"start"/);
  assert.ok(cut.frames.every((f) => f.flags === 0));
  assert.equal(cut.how, "reset");
});

await step("vanish: the sandbox is gone first: control plane 404, envd 502", async () => {
  const sb = await create();
  await fault({ method: "GET", path: `/sandboxes/${sb.sandboxID}`, action: "vanish" });
  const r = await api("GET", `/sandboxes/${sb.sandboxID}`);
  assert.equal(r.status, 404);
  assert.equal((await r.json()).code, 404);
  const sb2 = await create();
  await fault({ method: "POST", path: "/process.Process/Start", action: "vanish" });
  const s = await rawStream(sb2, "Start", echoStart);
  assert.equal(s.status, 502);
  assert.deepEqual(JSON.parse(s.rest.toString() || "{}"), { sandboxId: sb2.sandboxID, message: "The sandbox was not found", code: 502 });
  assert.equal((await api("GET", `/sandboxes/${sb2.sandboxID}`)).status, 404);
});

await step("DELETE /_fake/faults clears every rule", async () => {
  await fault({ method: "GET", path: "/v2/sandboxes", status: 500, times: 5 });
  assert.equal((await fetch(fake.base + "/_fake/faults", { method: "DELETE" })).status, 204);
  assert.equal((await api("GET", "/v2/sandboxes")).status, 200);
});

await step("requests: recorded in order, with validity, status, timing, and X-Fake-Handling-Ms", async () => {
  await fetch(fake.base + "/_fake/requests", { method: "DELETE" });
  const bad = await api("POST", "/v2/sandboxes", { templateID: "base", timeout: "soon", bogus: 1 });
  assert.equal(bad.status, 400);
  const msg = (await bad.json()).message;
  assert.match(msg, /timeout/);
  assert.match(msg, /bogus/);
  const ok = await api("GET", "/v2/sandboxes?limit=1");
  assert.ok(Number(ok.headers.get("x-fake-handling-ms")) >= 0);
  assert.equal((await api("GET", "/v2/sandboxes", undefined, { "X-API-KEY": "wrong" })).status, 401);
  const log = await (await fetch(fake.base + "/_fake/requests")).json();
  assert.deepEqual(log.map((r) => [r.method, r.path, r.status, r.valid]), [
    ["POST", "/v2/sandboxes", 400, false], ["GET", "/v2/sandboxes?limit=1", 200, true], ["GET", "/v2/sandboxes", 401, true]]);
  assert.match(log[0].problem, /timeout/);
  assert.deepEqual(log[1].headers["x-api-key"], ["e2b_test_key"]);
  assert.ok(log.every((r) => typeof r.ms === "number" && r.ms >= 0));
});

await fake.stop();
console.log(failures ? `${failures} step(s) failed` : "all steps passed");
process.exit(failures ? 1 : 0);
